"""The samtrack FiftyOne plugin's operators and panels (registered by the root ``__init__.py``)."""
