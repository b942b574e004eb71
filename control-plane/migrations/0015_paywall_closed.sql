-- When a channel's paywall was last closed (Unix ms): a recording of a live the paywall
-- closed at any moment is a subscribers' video (money::access::closed_since), however
-- long ago the revocation that ended the open sessions expired.
ALTER TABLE channel_paywalls ADD COLUMN last_closed_at BIGINT;
