#!/bin/sh
# Soak the ledger property tests (tests/property): thousands of random sequences of reports instead
# of CI's fixed 200 (SQLite) or 50 (PostgreSQL). A failure is shrunk to its shortest sequence, kept
# in bench/results/hypothesis/ so the next run tries it first, and printed with a @reproduce_failure blob.
#
#   bench/property_soak.sh                                   # SQLite, 5,000 examples (2–3 hours)
#   TIERUP_HYPOTHESIS_EXAMPLES=500 bench/property_soak.sh    # a shorter soak
#   TIERUP_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/tierup_soak bench/property_soak.sh
#
# Extra arguments go to pytest (e.g. -x, -s).
set -eu
cd "$(dirname "$0")/.."
TIERUP_HYPOTHESIS_PROFILE=soak exec .venv/bin/pytest tests/property "$@"
