"""What landed.

Listing the landing location by date, planning one run per date, and the versions a run was
requested for.
"""
