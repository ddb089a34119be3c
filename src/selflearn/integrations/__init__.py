"""Bridges to real assistants: a Wyoming conversation service and an OVOS utterance transformer.

The Home Assistant integration lives outside the package, in ``custom_components/selflearn``: it
runs inside Home Assistant's process and talks to ``selflearn serve`` over HTTP.
"""
