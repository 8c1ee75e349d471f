"""The desktop application (PySide6). Views hold layout only; controllers and workers call
the core. Importing this package must never import torch."""
