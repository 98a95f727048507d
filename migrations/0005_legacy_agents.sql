ALTER TABLE "agents" ADD COLUMN "kind" text DEFAULT 'enrolled' NOT NULL;--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "legacy_id" text;--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "legacy_protocol" text;--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "replaced_by" text;--> statement-breakpoint
ALTER TABLE "inventories" ADD COLUMN "legacy" jsonb;--> statement-breakpoint
ALTER TABLE "inventories" ADD COLUMN "raw" text;