"""Pure output formatters (matrix, JSON, JUnit, ...): data in, strings or rich renderables out; no I/O."""
