-- "This stream" subscribers-only: when the owner marked it (Unix ms). The live running
-- then, or the next one if the channel was offline, is for subscribers until it ends
-- (its broadcast ended and no other began within the grace): money::this_stream.
ALTER TABLE channel_paywalls ADD COLUMN stream_marked_at BIGINT;
