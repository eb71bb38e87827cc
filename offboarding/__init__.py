"""The lifecycle engine.

Despite its name (taken from the flow with the most at stake), this app runs all
three checklists of the employee lifecycle: join, move and leave. It owns the
checklist templates and runs, their tasks, the leaver's cut-off, hardware
returns, data handover and the retention purge. It depends on `assets` and
`accounts`; neither depends on it.
"""
