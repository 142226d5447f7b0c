"""Live events: published after a use case commits, delivered to subscribers of that member."""

from .broker import Broker, Event, MemoryBroker, Overflow, RedisBroker, Subscriber, create_broker

__all__ = ["Broker", "Event", "MemoryBroker", "Overflow", "RedisBroker", "Subscriber", "create_broker"]
