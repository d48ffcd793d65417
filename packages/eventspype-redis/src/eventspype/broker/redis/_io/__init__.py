"""Connections, fork safety, and the hand-packed fast paths of PUBLISH and XADD."""
