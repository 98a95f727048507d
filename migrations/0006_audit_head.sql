CREATE TABLE "audit_head" (
	"id" smallint PRIMARY KEY NOT NULL,
	"seq" bigint NOT NULL,
	"prev_hash" "bytea" NOT NULL,
	"hash" "bytea" NOT NULL,
	CONSTRAINT "audit_head_one_row" CHECK ("audit_head"."id" = 1)
);--> statement-breakpoint
-- The head starts where the chain stands (32 zero bytes, the genesis, for an empty one).
INSERT INTO "audit_head" ("id", "seq", "prev_hash", "hash")
SELECT 1, coalesce(l."seq", 0), coalesce(l."prev_hash", decode(repeat('00', 32), 'hex')), coalesce(l."hash", decode(repeat('00', 32), 'hex'))
FROM (SELECT 1) AS one LEFT JOIN (SELECT "seq", "prev_hash", "hash" FROM "audit_log" ORDER BY "seq" DESC LIMIT 1) AS l ON true;
--> statement-breakpoint
-- An entry appended the previous way (an instance of the previous version still running during a rolling
-- upgrade: advisory lock, last row, insert) moves the head too, so appends made the new way chain to it
-- instead of colliding with its seq forever. An append made the new way has already moved the head: no-op.
CREATE FUNCTION "audit_head_follows_log"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "audit_head" SET "seq" = NEW."seq", "prev_hash" = NEW."prev_hash", "hash" = NEW."hash"
  WHERE "id" = 1 AND "seq" < NEW."seq";
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "audit_log_moves_head" AFTER INSERT ON "audit_log" FOR EACH ROW EXECUTE FUNCTION "audit_head_follows_log"();
