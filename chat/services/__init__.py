"""Domain services: ``check_*``/``access_*`` validate and authorise, ``do_*`` write.

Transports (the WebSocket consumer, REST views) call these and nothing else. All
functions are keyword-only and typed. Events are published after commit only.
"""
