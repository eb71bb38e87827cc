"""The lifecycle flows, built on the engine: joiner, mover, leaver, hardware returns, retention purge,
lifecycle emails, access changes outside join/move/leave, and managers' change requests.

No facade: callers import from the sub-module that owns the flow (`offboarding.flows.leaver`, ...).
"""
