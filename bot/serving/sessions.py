"""onnxruntime sessions shared per model file inside MLServer (used by bot.serving.onnx_runtime).

A repository load of a model name reloads every version it serves (MLServer loads a new
instance, then unloads the old one), and MLServer re-imports the runtime's module each time
it makes an instance: the sessions live here, counted per file, so loading version 2 does not
open version 1's file again nor hold it twice in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort
from mlserver.errors import MLServerError

Key = tuple[str, int, int]
_sessions: dict[Key, tuple[ort.InferenceSession, int]] = {}


def open_session(path: str) -> tuple[Key, ort.InferenceSession]:
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key in _sessions:
        session, users = _sessions[key]
        _sessions[key] = (session, users + 1)
        return key, session
    options = ort.SessionOptions()
    # MLServer runs requests on one event loop: one intra-op pool per model is enough,
    # and a 2-core host shared with the bot must not be oversubscribed.
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own error types; the deploy reports the text
        # without the server's paths: the reason is shown to people (CLI, Slack)
        name = Path(path).name
        raise MLServerError(f"onnxruntime cannot load {name}: {str(exc).replace(path, name)}") from None
    _sessions[key] = (session, 1)
    return key, session


def close_session(key: Key) -> None:
    session, users = _sessions.pop(key, (None, 0))
    if session is not None and users > 1:
        _sessions[key] = (session, users - 1)
