"""feedwatch: watch RSS/Atom feeds, keep a versioned history of every document, say what changed."""

__version__ = "0.1.0"
USER_AGENT = f"feedwatch/{__version__} (+https://github.com/feedwatch/feedwatch; feed change monitor)"
