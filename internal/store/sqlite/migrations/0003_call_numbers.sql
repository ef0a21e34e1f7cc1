-- Calls in flight keep the numbers as dialled (for the call history a
-- restart must not blank) and whether a rule flagged the call (a flagged
-- call teaches the behaviour baselines nothing, restored or not).

ALTER TABLE calls ADD COLUMN from_number TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN to_number TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN flagged INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN new_network INTEGER NOT NULL DEFAULT 0;

-- A finished call the engine recorded keeps whether a rule flagged it, so
-- training learns baselines from the calls the live engine learns from.
ALTER TABLE call_history ADD COLUMN flagged INTEGER NOT NULL DEFAULT 0;
