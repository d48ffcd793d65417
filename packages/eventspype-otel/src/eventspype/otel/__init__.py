"""OpenTelemetry for eventspype: ``EventspypeInstrumentor().instrument()``.

See the "Observability" page of the documentation.
"""

from eventspype.otel._version import __version__
from eventspype.otel.instrumentor import EventspypeInstrumentor

__all__ = ["EventspypeInstrumentor", "__version__"]
