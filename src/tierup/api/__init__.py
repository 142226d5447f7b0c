"""The GraphQL API: Strawberry types, queries, mutations, permissions and dataloaders."""
