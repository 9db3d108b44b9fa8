"""Deployed models answer requests: the local target's models served by MLServer.

Installed with the `serve` extra. Inside MLServer: `onnx_runtime` (the custom runtime for ONNX
on onnxruntime), `sessions` (its sessions, shared per file), `repository` (the repository
MLServer reads). In the bot: `layout` (MLServer's repository files per environment under
AIMODEL_HOME/serving), `supervisor` (one MLServer per environment for `aimodel serve`),
`ports` (which port each listens on), `servers` (where each runs, for the other processes),
`client` (the HTTP calls), `control` (is serving on), `view` (what `list` and `status` show). bot.deploy.targets.mlserver is the
ModelServer the local target loads and unloads versions through.
"""
