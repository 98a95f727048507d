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
