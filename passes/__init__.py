"""One pass per module. Each declares `requires`/`ensures` and returns whether it changed the model."""
