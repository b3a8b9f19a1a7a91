"""The PyQt6 operator station. Talks to the core only through `inspector`'s public API."""
