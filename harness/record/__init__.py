"""The drill record: one typed model (``model``) with its JSON Schema (``schema/``), built by the engine
from what it measured (``build``) when a drill ends. Reports render it and compute nothing again."""
