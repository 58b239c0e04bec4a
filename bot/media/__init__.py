"""Media handling: image checks and fitting (Pillow), video probe and shrink (PyAV), and
the sandbox's test card."""
