"""Flight telemetry: DJI .SRT subtitle files next to videos, EXIF/XMP in photos."""

from triage_app.core.ingest.telemetry.model import Telemetry, TelemetryPoint
from triage_app.core.ingest.telemetry.srt import find_sidecar_srt, parse_srt, parse_srt_text

__all__ = ["Telemetry", "TelemetryPoint", "parse_srt", "parse_srt_text", "find_sidecar_srt"]
