"""The desktop window (PySide6): it only shows the headless parts' state and forwards what the user does."""
