"""Points of interest (sports events and venues) from several sources.

Per source an extract and a specific transform (`sources/<name>.py`, registered in
`sources/__init__.py`); then one generic transform (every `transform_*` method of the common
models, discovered) and one generic load (set-based upsert by (source, original id) with a content
hash and a history of replaced versions). See docs/pois.md.
"""
