"""Moderation: who may make videos where, with which models, how often, and which prompts
are refused. No Discord types here (the cogs pass plain ids and render the refusals).

``text`` normalises prompts, ``blocklist`` matches words and time-limited patterns,
``policy`` holds the per-guild data the store hands out, ``rules`` is the pure rule
check, ``gate`` runs it against the store before any charge, and ``privacy`` carries out
/forget-me.
"""
