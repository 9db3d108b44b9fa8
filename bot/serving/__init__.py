"""Deployed models answer requests: the local target's model repository served by MLServer.

Installed with the `serve` extra. `onnx_runtime` runs inside MLServer (its custom runtime for
ONNX on onnxruntime); `layout` writes MLServer's repository files from plain data;
`supervisor` runs one MLServer per environment for `aimodel serve`; `runtime` is what the
other processes read to find them.
"""
