"""Background loops: validate new jobs, dispatch queued jobs to the launcher, reconcile the
database with the launcher's truth. Each loop is a plain ``run_once()`` (tests call it
directly); ``loops.BackgroundLoops`` runs them on an interval inside the app's lifespan."""
