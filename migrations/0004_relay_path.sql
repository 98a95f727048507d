ALTER TABLE "agents" ADD COLUMN "last_path" jsonb;--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "last_relay_id" text;--> statement-breakpoint
ALTER TABLE "inventories" ADD COLUMN "path" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "seen_messages" ADD COLUMN "env" "bytea";