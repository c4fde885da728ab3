-- The demo warehouse: a small analytics company with four domains.
-- Created by `quarry demo`; filled by the seeded generator in src/demo/mod.rs.

-- users & engagement ------------------------------------------------------------------------
CREATE TABLE countries (
  country_code TEXT PRIMARY KEY,
  country_name TEXT NOT NULL,
  region       TEXT NOT NULL
);
CREATE TABLE users (
  user_id      INTEGER PRIMARY KEY,
  email        TEXT NOT NULL,
  full_name    TEXT NOT NULL,
  country_code TEXT NOT NULL REFERENCES countries(country_code),
  signup_date  TEXT NOT NULL,
  plan         TEXT NOT NULL,
  is_active    INTEGER NOT NULL
);
CREATE TABLE user_profiles_v1 (
  id         INTEGER PRIMARY KEY,
  mail       TEXT,
  name       TEXT,
  country    TEXT,
  created    TEXT
);
CREATE TABLE daily_active_users (
  activity_date TEXT NOT NULL,
  user_id       INTEGER NOT NULL REFERENCES users(user_id),
  country_code  TEXT NOT NULL REFERENCES countries(country_code),
  sessions      INTEGER NOT NULL,
  minutes_active INTEGER NOT NULL,
  PRIMARY KEY (activity_date, user_id)
);
CREATE TABLE dau_snapshot_legacy (
  activity_date TEXT NOT NULL,
  user_id       INTEGER NOT NULL,
  country_code  TEXT NOT NULL,
  sessions      INTEGER NOT NULL,
  minutes_active INTEGER NOT NULL
);
CREATE TABLE user_sessions (
  session_id   INTEGER PRIMARY KEY,
  user_id      INTEGER NOT NULL REFERENCES users(user_id),
  started_at   TEXT NOT NULL,
  duration_seconds INTEGER NOT NULL,
  device       TEXT NOT NULL,
  ip_address   TEXT NOT NULL
);

-- content -------------------------------------------------------------------------------------
CREATE TABLE topics (
  topic_id   INTEGER PRIMARY KEY,
  topic_name TEXT NOT NULL,
  category   TEXT NOT NULL
);
CREATE TABLE posts (
  post_id    INTEGER PRIMARY KEY,
  author_id  INTEGER NOT NULL REFERENCES users(user_id),
  topic_id   INTEGER NOT NULL REFERENCES topics(topic_id),
  created_at TEXT NOT NULL,
  word_count INTEGER NOT NULL
);
CREATE TABLE post_engagement (
  post_id    INTEGER NOT NULL REFERENCES posts(post_id),
  user_id    INTEGER NOT NULL REFERENCES users(user_id),
  event_date TEXT NOT NULL,
  event_type TEXT NOT NULL
);

-- ads -----------------------------------------------------------------------------------------
CREATE TABLE advertisers (
  advertiser_id INTEGER PRIMARY KEY,
  advertiser_name TEXT NOT NULL,
  industry      TEXT NOT NULL,
  contact_email TEXT NOT NULL
);
CREATE TABLE ad_campaigns (
  campaign_id   INTEGER PRIMARY KEY,
  advertiser_id INTEGER NOT NULL REFERENCES advertisers(advertiser_id),
  campaign_name TEXT NOT NULL,
  objective     TEXT NOT NULL,
  start_date    TEXT NOT NULL,
  end_date      TEXT NOT NULL,
  daily_budget  REAL NOT NULL
);
CREATE TABLE ad_daily_stats (
  stat_date    TEXT NOT NULL,
  campaign_id  INTEGER NOT NULL REFERENCES ad_campaigns(campaign_id),
  country_code TEXT NOT NULL REFERENCES countries(country_code),
  impressions  INTEGER NOT NULL,
  clicks       INTEGER NOT NULL,
  spend        REAL NOT NULL
);
CREATE TABLE ad_conversions (
  conversion_id INTEGER PRIMARY KEY,
  campaign_id   INTEGER NOT NULL REFERENCES ad_campaigns(campaign_id),
  user_id       INTEGER NOT NULL REFERENCES users(user_id),
  converted_at  TEXT NOT NULL,
  conversion_value REAL NOT NULL
);

-- commerce ------------------------------------------------------------------------------------
CREATE TABLE products (
  product_id   INTEGER PRIMARY KEY,
  product_name TEXT NOT NULL,
  category     TEXT NOT NULL,
  list_price   REAL NOT NULL
);
CREATE TABLE orders (
  order_id     INTEGER PRIMARY KEY,
  user_id      INTEGER NOT NULL REFERENCES users(user_id),
  ordered_at   TEXT NOT NULL,
  status       TEXT NOT NULL,
  country_code TEXT NOT NULL REFERENCES countries(country_code),
  total_amount REAL NOT NULL
);
CREATE TABLE order_items (
  order_id   INTEGER NOT NULL REFERENCES orders(order_id),
  product_id INTEGER NOT NULL REFERENCES products(product_id),
  quantity   INTEGER NOT NULL,
  unit_price REAL NOT NULL
);
CREATE TABLE orders_staging (
  order_id     INTEGER,
  user_id      INTEGER,
  ordered_at   TEXT,
  status       TEXT,
  country_code TEXT,
  total_amount REAL
);
CREATE TABLE refunds (
  refund_id   INTEGER PRIMARY KEY,
  order_id    INTEGER NOT NULL REFERENCES orders(order_id),
  refunded_at TEXT NOT NULL,
  amount      REAL NOT NULL,
  reason      TEXT NOT NULL
);
