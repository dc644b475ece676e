"""The laptop PostgreSQL server.

Start, share, stop and reset it, with private files and a clean environment.
"""
