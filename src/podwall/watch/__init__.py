"""`podwall watch`: the event-driven daemon (pure updater in state.py, adapters around it)."""
