"""loa: firmware for commune loudspeaker stations."""

__version__ = "0.1.0"
