"""Where approved calls run: the executor seam, in-process and Docker executors."""
