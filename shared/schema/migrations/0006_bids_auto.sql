-- A bid the platform placed for a bidder's maximum (an automatic bid, the
-- event's "auto") is archived as that bidder's bid, marked so that history
-- can tell it from a bid the bidder typed.
ALTER TABLE bids ADD COLUMN auto boolean NOT NULL DEFAULT false;
