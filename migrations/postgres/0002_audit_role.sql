-- The role whose policy governed each request (principals gained roles with the policy module).
ALTER TABLE audit_log ADD COLUMN role TEXT NOT NULL DEFAULT '';
