"""What every Redis broker shares, with no I/O.

Envelope, class registry, receive checks, local fan-out, counters and stats,
channel names.
"""
