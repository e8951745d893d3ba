//! What the admin endpoints read: runs, workers and queued jobs.
