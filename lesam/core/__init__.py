"""The project's ground floor: errors, atomic files, run ids, run folders and paths (imports nothing of lesam)."""
