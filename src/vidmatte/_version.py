"""The package version, in a module of its own: every part of vidmatte can import it without importing the package
(whose lazy attributes reach the API)."""

__version__ = "0.1.0"
