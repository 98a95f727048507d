CREATE TABLE "console_sessions" (
	"id_hash" "bytea" PRIMARY KEY NOT NULL,
	"admin_key_id" text NOT NULL,
	"csrf_secret" "bytea" NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"last_used_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone,
	"source_addr" text
);
--> statement-breakpoint
CREATE TABLE "forward_outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"target_id" text NOT NULL,
	"agent_id" text NOT NULL,
	"inventory_id" bigint NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"lease_owner" text,
	"lease_until" timestamp with time zone,
	"last_error" text
);
--> statement-breakpoint
CREATE TABLE "forward_targets" (
	"id" text PRIMARY KEY NOT NULL,
	"url" text NOT NULL,
	"active" boolean DEFAULT true NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"removed_at" timestamp with time zone,
	"delivered_total" bigint DEFAULT 0 NOT NULL,
	"last_delivered_at" timestamp with time zone,
	"last_error" text,
	"last_error_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "last_path" jsonb;--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "last_relay_id" text;--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "cidr" text;--> statement-breakpoint
ALTER TABLE "inventories" ADD COLUMN "path" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "seen_messages" ADD COLUMN "env" "bytea";--> statement-breakpoint
ALTER TABLE "console_sessions" ADD CONSTRAINT "console_sessions_admin_key_id_admin_keys_id_fk" FOREIGN KEY ("admin_key_id") REFERENCES "public"."admin_keys"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "forward_outbox" ADD CONSTRAINT "forward_outbox_target_id_forward_targets_id_fk" FOREIGN KEY ("target_id") REFERENCES "public"."forward_targets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "forward_outbox" ADD CONSTRAINT "forward_outbox_inventory_id_inventories_id_fk" FOREIGN KEY ("inventory_id") REFERENCES "public"."inventories"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "console_sessions_admin_key_idx" ON "console_sessions" USING btree ("admin_key_id");--> statement-breakpoint
CREATE UNIQUE INDEX "forward_outbox_order_idx" ON "forward_outbox" USING btree ("target_id","agent_id","inventory_id");--> statement-breakpoint
CREATE INDEX "forward_outbox_due_idx" ON "forward_outbox" USING btree ("target_id","next_attempt_at");--> statement-breakpoint
CREATE INDEX "forward_outbox_inventory_idx" ON "forward_outbox" USING btree ("inventory_id");--> statement-breakpoint
CREATE INDEX "agents_created_idx" ON "agents" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "agents_labels_idx" ON "agents" USING gin ("labels");