"""The drill engine: a world per drill, the Drill API scenarios use, and its pytest plugin."""
