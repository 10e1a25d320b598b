"""Live relay ("tiếp sóng"): a `Source` that plays an HTTP MP3 or Ogg (Icecast) stream, fails over to the
next URL when the stream stalls or sends garbage, comes back to the primary once it recovers, and falls back
to a local file played in a loop when every stream is down.

Three rooms:

* `supervisor.py`: `RelaySource` and `open_stream`, the failover supervisor (health checks, re-checks with
  back-off, switches reported through `on_switch`); the behaviour is described there.
* `inputs.py`: what the supervisor plays from: the bounded `PcmQueue`, the ffmpeg decoder inputs (a stream
  fed from the network, a looped fallback file) and a fallback decoded by the audio layer; `RelayTimings`.
* `http.py`: the minimal HTTP/1.0 client a stream input reads from.
"""

from firmware.audio.relay.inputs import CLOSE_BUDGET_S, RelayTimings
from firmware.audio.relay.supervisor import RelaySource, SwitchCallback, open_stream

__all__ = ["CLOSE_BUDGET_S", "RelaySource", "RelayTimings", "SwitchCallback", "open_stream"]
