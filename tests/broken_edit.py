"""A broken file to add to the retail example: every part a diagnostic can have.

A span with its end (end_line, end_column), a hint and a related place; the
OpenAPI and round-trip tests both serve and read back what it produces.
"""

BROKEN = """\
rule vip_early_access
  when views(24h) > 1
  then show hero_vip in hero

rule typo
  when user.tier == "gold" and vip_segment
  then show hero_vip in hero
"""
