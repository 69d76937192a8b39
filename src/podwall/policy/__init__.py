"""The policy: schema (pydantic), loading with line numbers (ruamel), and its meaning (semantics)."""
