"""The node's WebSocket connection: websockets' own, with fewer writes per opening.

websockets writes the opening handshake's response as soon as it is made, and the node's
first frame (``connected``, or the refusal of a connection over its limits) a moment later:
two writes, two system calls and two wake-ups of the client for every connection. Here an
accepted handshake's response waits in the connection's buffer for that first frame, and
what is waiting leaves in one write. A refused handshake's response leaves at once.
"""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

__all__ = ["NodeConnection"]


class NodeConnection(ServerConnection):
    """A server connection whose handshake response leaves with the first frame."""

    holding_response = True
    """Until the handshake is accepted: its response is then held back, once."""

    def send_data(self) -> None:
        if self.holding_response and self.protocol.state is State.OPEN:
            self.holding_response = False
            return  # the accepted handshake's response waits for the first frame
        writes = self.protocol.writes
        if len(writes) > 1 and all(writes):  # an empty write stands for the end of the stream
            self.protocol.writes = [b"".join(writes)]
        super().send_data()
