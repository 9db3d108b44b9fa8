"""The bytes as KServe reads them: one folder per digest holding `model.onnx`.

KServe's storage initializer copies the folder a `storageUri` names into the predictor, and
its ONNX runtimes load `model.onnx` from there (KServe's ONNX guide: "upload your model as
model.onnx"). The store keeps an object as `sha256/<digest>`, with no name, so once the bytes
pass the gate the target places the verified file at `<store>/serving/<digest>/model.onnx`.
The folder is named by the digest of what it holds: written once, never changed, shared by
every environment that runs those bytes; a second deploy of the same bytes writes nothing.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from bot.store import open_filesystem

SERVING = "serving"
FILE_NAMES = {"onnx": "model.onnx"}  # format -> the name the runtime loads


def serving_uri(storage: str, digest: str) -> str:
    """The folder the cluster reads, under the store as the cluster names it."""
    return f"{storage.rstrip('/')}/{SERVING}/{digest}"


def place(store_url: str, digest: str, fmt: str, verified: Path) -> None:
    """Put the verified file where serving_uri points; raises StoreError or OSError."""
    fs, root = open_filesystem(store_url)
    folder = serving_uri(root, digest)
    final = f"{folder}/{FILE_NAMES[fmt]}"
    if fs.exists(final):
        return
    fs.makedirs(folder, exist_ok=True)
    if "file" in fs.protocol or "local" in fs.protocol:
        # on a file system, a reader must never see half a file under the final name
        partial = f"{folder}/.{uuid.uuid4().hex}.partial"
        fs.put_file(str(verified), partial)
        fs.mv(partial, final)
    else:  # an object store shows an object only once it is whole
        fs.put_file(str(verified), final)
