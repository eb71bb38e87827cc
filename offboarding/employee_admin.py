"""Lifecycle actions on the Employee admin (terminate, mover preview, joiner start, checklists inline).

Re-registers the Employee admin as a subclass of the one `assets` registered, as `assets`
does for `accounts`, so `accounts` never imports the lifecycle engine.
"""
