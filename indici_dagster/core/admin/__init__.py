"""Administration: the roles, grants and reader limits a DBA sets up once (`indici bootstrap`)."""
