"""The employee lifecycle: join, move and leave (despite the app's name, taken from the flow with most at stake).

`engine/` runs checklists generically (templates, runs, claiming and executing tasks, the
sweeper, overdue reminders); `flows/` builds the joiner, mover and leaver on it, with hardware
returns, the retention purge, lifecycle emails, access changes and managers' change requests.
It depends on `assets` and `accounts`; neither depends on it.
"""
