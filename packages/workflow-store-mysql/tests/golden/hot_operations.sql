-- create_run: 1 round trip(s)
INSERT INTO {schema}.workflow_runs (run_id, workflow_id, workflow_version, status, input, lease_token, next_event_index, created_at, updated_at, ready_at, queue, priority, partition_key, deadline_at) VALUES (%(p_run_id)s, %(p_workflow_id)s, %(p_workflow_version)s, %(p_status)s, %(p_input)s, %(p_lease_token)s, %(p_next_event_index)s, %(p_created_at)s, %(p_updated_at)s, %(p_ready_at)s, %(p_queue)s, %(p_priority)s, %(p_partition_key)s, %(p_deadline_at)s);

-- create_run_claimed: 1 round trip(s)
INSERT INTO {schema}.workflow_runs (run_id, workflow_id, workflow_version, status, input, lease_token, next_event_index, created_at, updated_at, ready_at, queue, priority, partition_key, deadline_at, lease_owner, lease_expires_at) SELECT %(p_run_id)s AS anon_1, %(p_workflow_id)s AS anon_2, %(p_workflow_version)s AS anon_3, %(p_status)s AS anon_4, %(p_input)s AS anon_5, %(p_lease_token)s AS anon_6, %(p_next_event_index)s AS anon_7, %(p_created_at)s AS anon_8, %(p_updated_at)s AS anon_9, %(p_ready_at)s AS anon_10, %(p_queue)s AS anon_11, %(p_priority)s AS anon_12, %(p_partition_key)s AS anon_13, %(p_deadline_at)s AS anon_14, %(p_lease_owner)s AS anon_15, %(p_lease_expires_at)s AS anon_16 FROM DUAL 
WHERE NOT (EXISTS (SELECT * 
FROM {schema}.workflow_queues 
WHERE {schema}.workflow_queues.name = %(p_queue)s AND ({schema}.workflow_queues.concurrency IS NOT NULL OR {schema}.workflow_queues.per_key_concurrency IS NOT NULL OR {schema}.workflow_queues.rate_count IS NOT NULL)));

-- claim_run: 1 round trip(s)
UPDATE {schema}.workflow_runs SET updated_at=CASE WHEN ({schema}.workflow_runs.status = %(b0_status_1)s) THEN {schema}.workflow_runs.updated_at ELSE %(p_now)s END, status=%(b0_status)s, lease_owner=%(p_owner)s, lease_token=({schema}.workflow_runs.lease_token + %(b0_lease_token_1)s), lease_expires_at=%(p_expires_at)s WHERE {schema}.workflow_runs.run_id = %(p_run_id)s AND ({schema}.workflow_runs.status = %(b0_status_2)s OR {schema}.workflow_runs.status = %(b0_status_3)s AND {schema}.workflow_runs.lease_expires_at <= %(p_now)s) AND NOT (EXISTS (SELECT * 
FROM {schema}.workflow_queues 
WHERE {schema}.workflow_queues.name = {schema}.workflow_runs.queue AND ({schema}.workflow_queues.concurrency IS NOT NULL OR {schema}.workflow_queues.per_key_concurrency IS NOT NULL OR {schema}.workflow_queues.rate_count IS NOT NULL)));
SELECT ROW_COUNT() AS claimed, {schema}.workflow_runs.run_id, {schema}.workflow_runs.workflow_id, {schema}.workflow_runs.workflow_version, {schema}.workflow_runs.status, {schema}.workflow_runs.input, {schema}.workflow_runs.output, {schema}.workflow_runs.error, {schema}.workflow_runs.wait_kind, {schema}.workflow_runs.wait_step_id, {schema}.workflow_runs.wait_key, {schema}.workflow_runs.wait_meta, {schema}.workflow_runs.wake_at, {schema}.workflow_runs.lease_owner, {schema}.workflow_runs.lease_token, {schema}.workflow_runs.lease_expires_at, {schema}.workflow_runs.next_event_index, {schema}.workflow_runs.created_at, {schema}.workflow_runs.updated_at, {schema}.workflow_runs.ready_at, {schema}.workflow_runs.queue, {schema}.workflow_runs.priority, {schema}.workflow_runs.partition_key, {schema}.workflow_runs.deadline_at, {schema}.workflow_runs.parent_run_id, {schema}.workflow_runs.parent_policy, (SELECT JSON_ARRAYAGG(JSON_ARRAY(CAST({schema}.workflow_inbox.kind AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.`key` AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.name AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.step_id AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.payload AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.meta AS CHAR CHARACTER SET utf8mb4), {schema}.workflow_inbox.received_at, {schema}.workflow_inbox.consumed)) AS `JSON_ARRAYAGG_1` 
FROM {schema}.workflow_inbox 
WHERE {schema}.workflow_inbox.run_id = {schema}.workflow_runs.run_id AND {schema}.workflow_inbox.consumed = false) AS inbox_json 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id = %(p_run_id)s;

-- heartbeat: 1 round trip(s)
UPDATE {schema}.workflow_runs SET lease_expires_at=%(p_expires_at)s WHERE {schema}.workflow_runs.run_id = %(p_run_id)s AND {schema}.workflow_runs.lease_owner = %(p_owner)s AND {schema}.workflow_runs.lease_token = %(p_token)s AND ({schema}.workflow_runs.lease_expires_at > %(p_now)s OR NOT (EXISTS (SELECT * 
FROM {schema}.workflow_queues 
WHERE {schema}.workflow_queues.name = {schema}.workflow_runs.queue AND ({schema}.workflow_queues.concurrency IS NOT NULL OR {schema}.workflow_queues.per_key_concurrency IS NOT NULL))));

-- append_events_1: 1 round trip(s)
BEGIN;
UPDATE {schema}.workflow_runs SET next_event_index=%(p_next)s WHERE {schema}.workflow_runs.run_id = %(p_run_id)s AND {schema}.workflow_runs.lease_owner = %(p_owner)s AND {schema}.workflow_runs.lease_token = %(p_token)s AND {schema}.workflow_runs.next_event_index = %(p_expected)s;
SET @wf_ok = ROW_COUNT();
INSERT INTO {schema}.workflow_events (run_id, event_index, type, step_id, data, created_at) SELECT %(p_run_id)s AS anon_1, %(p_e0_event_index)s AS anon_2, %(p_e0_type)s AS anon_3, %(p_e0_step_id)s AS anon_4, %(p_e0_data)s AS anon_5, %(p_now)s AS anon_6 FROM DUAL 
WHERE @wf_ok = 1;
SELECT @wf_ok AS ok;
COMMIT;

-- append_events_10: 1 round trip(s)
BEGIN;
UPDATE {schema}.workflow_runs SET next_event_index=%(p_next)s WHERE {schema}.workflow_runs.run_id = %(p_run_id)s AND {schema}.workflow_runs.lease_owner = %(p_owner)s AND {schema}.workflow_runs.lease_token = %(p_token)s AND {schema}.workflow_runs.next_event_index = %(p_expected)s;
SET @wf_ok = ROW_COUNT();
INSERT INTO {schema}.workflow_events (run_id, event_index, type, step_id, data, created_at) SELECT %(p_run_id)s AS anon_1, %(p_e0_event_index)s AS anon_2, %(p_e0_type)s AS anon_3, %(p_e0_step_id)s AS anon_4, %(p_e0_data)s AS anon_5, %(p_now)s AS anon_6 FROM DUAL 
WHERE @wf_ok = 1 UNION ALL SELECT %(p_run_id)s AS anon_7, %(p_e1_event_index)s AS anon_8, %(p_e1_type)s AS anon_9, %(p_e1_step_id)s AS anon_10, %(p_e1_data)s AS anon_11, %(p_now)s AS anon_12 FROM DUAL 
WHERE @wf_ok = 1 UNION ALL SELECT %(p_run_id)s AS anon_13, %(p_e2_event_index)s AS anon_14, %(p_e2_type)s AS anon_15, %(p_e2_step_id)s AS anon_16, %(p_e2_data)s AS anon_17, %(p_now)s AS anon_18 FROM DUAL 
WHERE @wf_ok = 1 UNION ALL SELECT %(p_run_id)s AS anon_19, %(p_e3_event_index)s AS anon_20, %(p_e3_type)s AS anon_21, %(p_e3_step_id)s AS anon_22, %(p_e3_data)s AS anon_23, %(p_now)s AS anon_24 FROM DUAL 
WHERE @wf_ok = 1 UNION ALL SELECT %(p_run_id)s AS anon_25, %(p_e4_event_index)s AS anon_26, %(p_e4_type)s AS anon_27, %(p_e4_step_id)s AS anon_28, %(p_e4_data)s AS anon_29, %(p_now)s AS anon_30 FROM DUAL 
WHERE @wf_ok = 1 UNION ALL SELECT %(p_run_id)s AS anon_31, %(p_e5_event_index)s AS anon_32, %(p_e5_type)s AS anon_33, %(p_e5_step_id)s AS anon_34, %(p_e5_data)s AS anon_35, %(p_now)s AS anon_36 FROM DUAL 
WHERE @wf_ok = 1 UNION ALL SELECT %(p_run_id)s AS anon_37, %(p_e6_event_index)s AS anon_38, %(p_e6_type)s AS anon_39, %(p_e6_step_id)s AS anon_40, %(p_e6_data)s AS anon_41, %(p_now)s AS anon_42 FROM DUAL 
WHERE @wf_ok = 1 UNION ALL SELECT %(p_run_id)s AS anon_43, %(p_e7_event_index)s AS anon_44, %(p_e7_type)s AS anon_45, %(p_e7_step_id)s AS anon_46, %(p_e7_data)s AS anon_47, %(p_now)s AS anon_48 FROM DUAL 
WHERE @wf_ok = 1 UNION ALL SELECT %(p_run_id)s AS anon_49, %(p_e8_event_index)s AS anon_50, %(p_e8_type)s AS anon_51, %(p_e8_step_id)s AS anon_52, %(p_e8_data)s AS anon_53, %(p_now)s AS anon_54 FROM DUAL 
WHERE @wf_ok = 1 UNION ALL SELECT %(p_run_id)s AS anon_55, %(p_e9_event_index)s AS anon_56, %(p_e9_type)s AS anon_57, %(p_e9_step_id)s AS anon_58, %(p_e9_data)s AS anon_59, %(p_now)s AS anon_60 FROM DUAL 
WHERE @wf_ok = 1;
SELECT @wf_ok AS ok;
COMMIT;

-- settle_run: 1 round trip(s)
BEGIN;
UPDATE {schema}.workflow_runs SET status=%(p_v_status)s, wait_kind=%(p_v_wait_kind)s, wait_step_id=%(p_v_wait_step_id)s, wait_key=%(p_v_wait_key)s, wait_meta=%(p_v_wait_meta)s, wake_at=%(p_v_wake_at)s, lease_owner=%(p_v_lease_owner)s, lease_expires_at=%(p_v_lease_expires_at)s, next_event_index=%(p_v_next_event_index)s, updated_at=%(p_v_updated_at)s, ready_at=%(p_v_ready_at)s WHERE {schema}.workflow_runs.run_id = %(p_run_id)s AND {schema}.workflow_runs.lease_owner = %(p_owner)s AND {schema}.workflow_runs.lease_token = %(p_token)s AND {schema}.workflow_runs.next_event_index = %(p_expected)s;
SET @wf_ok = ROW_COUNT();
UPDATE {schema}.workflow_runs SET status=%(p_q_status)s, wait_kind=%(p_q_wait_kind)s, wait_step_id=%(p_q_wait_step_id)s, wait_key=%(p_q_wait_key)s, wait_meta=%(p_q_wait_meta)s, wake_at=%(p_q_wake_at)s, updated_at=%(p_q_updated_at)s, ready_at=%(p_q_ready_at)s WHERE {schema}.workflow_runs.run_id = %(p_run_id)s AND (EXISTS (SELECT * 
FROM {schema}.workflow_inbox 
WHERE {schema}.workflow_inbox.run_id = %(p_run_id)s AND {schema}.workflow_inbox.consumed = false AND ({schema}.workflow_inbox.kind = %(b3_kind_1)s AND {schema}.workflow_inbox.`key` = %(p_wait_step_id)s OR {schema}.workflow_inbox.kind = %(b3_kind_2)s AND {schema}.workflow_inbox.name = %(p_wait_key)s AND ({schema}.workflow_inbox.step_id IS NULL OR {schema}.workflow_inbox.step_id = %(p_wait_step_id)s)))) AND @wf_ok = 1;
SELECT @wf_ok AS ok, {schema}.workflow_runs.run_id, {schema}.workflow_runs.workflow_id, {schema}.workflow_runs.workflow_version, {schema}.workflow_runs.status, {schema}.workflow_runs.input, {schema}.workflow_runs.output, {schema}.workflow_runs.error, {schema}.workflow_runs.wait_kind, {schema}.workflow_runs.wait_step_id, {schema}.workflow_runs.wait_key, {schema}.workflow_runs.wait_meta, {schema}.workflow_runs.wake_at, {schema}.workflow_runs.lease_owner, {schema}.workflow_runs.lease_token, {schema}.workflow_runs.lease_expires_at, {schema}.workflow_runs.next_event_index, {schema}.workflow_runs.created_at, {schema}.workflow_runs.updated_at, {schema}.workflow_runs.ready_at, {schema}.workflow_runs.queue, {schema}.workflow_runs.priority, {schema}.workflow_runs.partition_key, {schema}.workflow_runs.deadline_at, {schema}.workflow_runs.parent_run_id, {schema}.workflow_runs.parent_policy 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id = %(p_run_id)s;
COMMIT;

-- fire_due_timers: 2 round trip(s)
SELECT {schema}.workflow_runs.run_id 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.finished_at IS NULL AND {schema}.workflow_runs.deadline_at <= %(p_now)s ORDER BY {schema}.workflow_runs.deadline_at, {schema}.workflow_runs.run_id 
 LIMIT %(p_limit)s;
BEGIN;
SELECT JSON_ARRAYAGG(CAST(candidates.run_id AS CHAR CHARACTER SET utf8mb4)) AS `JSON_ARRAYAGG_1` 
FROM (SELECT {schema}.workflow_runs.run_id AS run_id 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.wake_at IS NOT NULL AND {schema}.workflow_runs.wake_at <= %(p_now)s ORDER BY {schema}.workflow_runs.wake_at, {schema}.workflow_runs.run_id 
 LIMIT %(p_limit)s FOR UPDATE SKIP LOCKED) AS candidates INTO @wf_ids;
INSERT INTO {schema}.workflow_inbox (run_id, kind, `key`, name, step_id, payload, meta, received_at, consumed) SELECT {schema}.workflow_runs.run_id, %(b2_param_1)s AS anon_1, {schema}.workflow_runs.wait_step_id, CASE WHEN ({schema}.workflow_runs.wait_kind = %(b2_wait_kind_1)s) THEN {schema}.workflow_runs.wait_key ELSE NULL END AS anon_2, {schema}.workflow_runs.wait_step_id AS wait_step_id__1, concat(%(b2_concat_2)s, {schema}.workflow_runs.wake_at, %(b2_concat_3)s) AS concat_1, NULL AS anon_3, %(p_now)s AS anon_4, false AS anon_5 
FROM JSON_TABLE(@wf_ids, '$[*]' COLUMNS (id VARCHAR(255) CHARACTER SET utf8mb4 PATH '$')) AS picked INNER JOIN {schema}.workflow_runs ON {schema}.workflow_runs.run_id = CAST(picked.id AS BINARY) ON DUPLICATE KEY UPDATE name = VALUES(name), payload = VALUES(payload), meta = VALUES(meta), received_at = VALUES(received_at), consumed = VALUES(consumed);
SELECT {schema}.workflow_inbox.run_id, {schema}.workflow_inbox.kind, {schema}.workflow_inbox.`key`, {schema}.workflow_inbox.name, {schema}.workflow_inbox.step_id, {schema}.workflow_inbox.payload, {schema}.workflow_inbox.meta, {schema}.workflow_inbox.received_at, {schema}.workflow_inbox.consumed 
FROM JSON_TABLE(@wf_ids, '$[*]' COLUMNS (id VARCHAR(255) CHARACTER SET utf8mb4 PATH '$')) AS picked INNER JOIN {schema}.workflow_runs ON {schema}.workflow_runs.run_id = CAST(picked.id AS BINARY) INNER JOIN {schema}.workflow_inbox ON {schema}.workflow_inbox.run_id = {schema}.workflow_runs.run_id AND {schema}.workflow_inbox.kind = %(b3_kind_1)s AND {schema}.workflow_inbox.`key` = {schema}.workflow_runs.wait_step_id ORDER BY {schema}.workflow_runs.wake_at, {schema}.workflow_runs.run_id;
UPDATE {schema}.workflow_runs, JSON_TABLE(@wf_ids, '$[*]' COLUMNS (id VARCHAR(255) CHARACTER SET utf8mb4 PATH '$')) AS picked SET workflow_runs.status=%(p_q_status)s, workflow_runs.wait_kind=%(p_q_wait_kind)s, workflow_runs.wait_step_id=%(p_q_wait_step_id)s, workflow_runs.wait_key=%(p_q_wait_key)s, workflow_runs.wait_meta=%(p_q_wait_meta)s, workflow_runs.wake_at=%(p_q_wake_at)s, workflow_runs.updated_at=%(p_q_updated_at)s, workflow_runs.ready_at=%(p_q_ready_at)s WHERE {schema}.workflow_runs.run_id = CAST(picked.id AS BINARY);
COMMIT;

-- deliver_signal: 1 round trip(s)
BEGIN;
SET @wf_status = NULL;
SELECT {schema}.workflow_runs.status 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id = %(p_run_id)s FOR UPDATE INTO @wf_status;
INSERT INTO {schema}.workflow_inbox (run_id, kind, `key`, name, step_id, payload, meta, received_at, consumed) SELECT %(p_run_id)s AS anon_1, %(p_kind)s AS anon_2, %(p_key)s AS anon_3, %(p_name)s AS anon_4, %(p_step_id)s AS anon_5, %(p_payload)s AS anon_6, %(p_meta)s AS anon_7, %(p_received_at)s AS anon_8, false AS anon_9 FROM DUAL 
WHERE @wf_status IS NOT NULL AND (@wf_status NOT IN (%(b3_param_1)s, %(b3_param_2)s, %(b3_param_3)s, %(b3_param_4)s)) AND NOT (EXISTS (SELECT * 
FROM {schema}.workflow_inbox 
WHERE {schema}.workflow_inbox.run_id = %(p_run_id)s AND {schema}.workflow_inbox.kind = %(p_kind)s AND {schema}.workflow_inbox.`key` = %(p_key)s));
SET @wf_ok = ROW_COUNT();
UPDATE {schema}.workflow_runs SET status=%(p_q_status)s, wait_kind=%(p_q_wait_kind)s, wait_step_id=%(p_q_wait_step_id)s, wait_key=%(p_q_wait_key)s, wait_meta=%(p_q_wait_meta)s, wake_at=%(p_q_wake_at)s, updated_at=%(p_q_updated_at)s, ready_at=%(p_q_ready_at)s WHERE {schema}.workflow_runs.run_id = %(p_run_id)s AND @wf_ok = 1 AND {schema}.workflow_runs.status = %(b5_status_1)s AND {schema}.workflow_runs.wait_kind = %(b5_wait_kind_1)s AND {schema}.workflow_runs.wait_key = %(p_name)s;
SELECT @wf_ok AS `stored`, ROW_COUNT() AS woke, {schema}.workflow_runs.run_id, {schema}.workflow_runs.workflow_id, {schema}.workflow_runs.workflow_version, {schema}.workflow_runs.status, {schema}.workflow_runs.input, {schema}.workflow_runs.output, {schema}.workflow_runs.error, {schema}.workflow_runs.wait_kind, {schema}.workflow_runs.wait_step_id, {schema}.workflow_runs.wait_key, {schema}.workflow_runs.wait_meta, {schema}.workflow_runs.wake_at, {schema}.workflow_runs.lease_owner, {schema}.workflow_runs.lease_token, {schema}.workflow_runs.lease_expires_at, {schema}.workflow_runs.next_event_index, {schema}.workflow_runs.created_at, {schema}.workflow_runs.updated_at, {schema}.workflow_runs.ready_at, {schema}.workflow_runs.queue, {schema}.workflow_runs.priority, {schema}.workflow_runs.partition_key, {schema}.workflow_runs.deadline_at, {schema}.workflow_runs.parent_run_id, {schema}.workflow_runs.parent_policy, seen.kind AS seen_kind, seen.`key` AS seen_key, seen.name AS seen_name, seen.step_id AS seen_step_id, seen.payload AS seen_payload, seen.meta AS seen_meta, seen.received_at AS seen_received_at, seen.consumed AS seen_consumed 
FROM {schema}.workflow_runs LEFT OUTER JOIN {schema}.workflow_inbox AS seen ON seen.run_id = {schema}.workflow_runs.run_id AND seen.kind = %(p_kind)s AND seen.`key` = %(p_key)s 
WHERE {schema}.workflow_runs.run_id = %(p_run_id)s;
COMMIT;

-- claim_runnable: 1 round trip(s)
BEGIN;
SELECT JSON_ARRAYAGG(CAST(candidates.run_id AS CHAR CHARACTER SET utf8mb4)) AS `JSON_ARRAYAGG_1` 
FROM (SELECT claimable.run_id AS run_id, claimable.priority AS priority, claimable.ready_at AS ready_at 
FROM (SELECT queued.run_id AS run_id, queued.priority AS priority, queued.ready_at AS ready_at 
FROM (SELECT {schema}.workflow_runs.run_id AS run_id, {schema}.workflow_runs.priority AS priority, {schema}.workflow_runs.ready_at AS ready_at 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.status = %(b1_status_1)s AND {schema}.workflow_runs.ready_at IS NOT NULL AND NOT (EXISTS (SELECT * 
FROM {schema}.workflow_queues 
WHERE {schema}.workflow_queues.concurrency IS NOT NULL OR {schema}.workflow_queues.per_key_concurrency IS NOT NULL OR {schema}.workflow_queues.rate_count IS NOT NULL)) ORDER BY {schema}.workflow_runs.priority DESC, {schema}.workflow_runs.ready_at, {schema}.workflow_runs.run_id 
 LIMIT %(p_limit)s FOR UPDATE SKIP LOCKED) AS queued UNION ALL SELECT expired.run_id AS run_id, expired.priority AS priority, expired.ready_at AS ready_at 
FROM (SELECT {schema}.workflow_runs.run_id AS run_id, {schema}.workflow_runs.priority AS priority, {schema}.workflow_runs.ready_at AS ready_at 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.status = %(b1_status_2)s AND {schema}.workflow_runs.lease_expires_at <= %(p_now)s AND {schema}.workflow_runs.ready_at IS NOT NULL AND NOT (EXISTS (SELECT * 
FROM {schema}.workflow_queues 
WHERE {schema}.workflow_queues.concurrency IS NOT NULL OR {schema}.workflow_queues.per_key_concurrency IS NOT NULL OR {schema}.workflow_queues.rate_count IS NOT NULL)) ORDER BY {schema}.workflow_runs.priority DESC, {schema}.workflow_runs.ready_at, {schema}.workflow_runs.run_id 
 LIMIT %(p_limit)s FOR UPDATE SKIP LOCKED) AS expired) AS claimable ORDER BY claimable.priority DESC, claimable.ready_at, claimable.run_id 
 LIMIT %(p_limit)s) AS candidates INTO @wf_ids;
UPDATE {schema}.workflow_runs, JSON_TABLE(@wf_ids, '$[*]' COLUMNS (id VARCHAR(255) CHARACTER SET utf8mb4 PATH '$')) AS picked SET workflow_runs.updated_at=CASE WHEN ({schema}.workflow_runs.status = %(b2_status_1)s) THEN {schema}.workflow_runs.updated_at ELSE %(p_now)s END, workflow_runs.status=%(b2_status)s, workflow_runs.lease_owner=%(p_owner)s, workflow_runs.lease_token=({schema}.workflow_runs.lease_token + %(b2_lease_token_1)s), workflow_runs.lease_expires_at=%(p_expires_at)s WHERE {schema}.workflow_runs.run_id = CAST(picked.id AS BINARY);
SELECT {schema}.workflow_runs.run_id, {schema}.workflow_runs.workflow_id, {schema}.workflow_runs.workflow_version, {schema}.workflow_runs.status, {schema}.workflow_runs.input, {schema}.workflow_runs.output, {schema}.workflow_runs.error, {schema}.workflow_runs.wait_kind, {schema}.workflow_runs.wait_step_id, {schema}.workflow_runs.wait_key, {schema}.workflow_runs.wait_meta, {schema}.workflow_runs.wake_at, {schema}.workflow_runs.lease_owner, {schema}.workflow_runs.lease_token, {schema}.workflow_runs.lease_expires_at, {schema}.workflow_runs.next_event_index, {schema}.workflow_runs.created_at, {schema}.workflow_runs.updated_at, {schema}.workflow_runs.ready_at, {schema}.workflow_runs.queue, {schema}.workflow_runs.priority, {schema}.workflow_runs.partition_key, {schema}.workflow_runs.deadline_at, {schema}.workflow_runs.parent_run_id, {schema}.workflow_runs.parent_policy, (SELECT JSON_ARRAYAGG(JSON_ARRAY(CAST({schema}.workflow_inbox.kind AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.`key` AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.name AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.step_id AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.payload AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.meta AS CHAR CHARACTER SET utf8mb4), {schema}.workflow_inbox.received_at, {schema}.workflow_inbox.consumed)) AS `JSON_ARRAYAGG_1` 
FROM {schema}.workflow_inbox 
WHERE {schema}.workflow_inbox.run_id = {schema}.workflow_runs.run_id AND {schema}.workflow_inbox.consumed = false) AS inbox_json 
FROM JSON_TABLE(@wf_ids, '$[*]' COLUMNS (id VARCHAR(255) CHARACTER SET utf8mb4 PATH '$')) AS picked INNER JOIN {schema}.workflow_runs ON {schema}.workflow_runs.run_id = CAST(picked.id AS BINARY);
COMMIT;

-- fire_due_schedules: 2 round trip(s)
SELECT {schema}.workflow_schedules.schedule_id, {schema}.workflow_schedules.workflow_id, {schema}.workflow_schedules.workflow_version, {schema}.workflow_schedules.spec, {schema}.workflow_schedules.overlap, {schema}.workflow_schedules.input, {schema}.workflow_schedules.enabled, {schema}.workflow_schedules.next_fire_at, {schema}.workflow_schedules.last_fired_at, {schema}.workflow_schedules.last_run_id, {schema}.workflow_schedules.updated_at, (SELECT {schema}.workflow_runs.status 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id = {schema}.workflow_schedules.last_run_id) IS NOT NULL AND (SELECT {schema}.workflow_runs.status 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id = {schema}.workflow_schedules.last_run_id) IN (%(param_1)s, %(param_2)s, %(param_3)s) AS busy 
FROM {schema}.workflow_schedules 
WHERE {schema}.workflow_schedules.enabled = true AND {schema}.workflow_schedules.next_fire_at <= %(p_now)s AND NOT ({schema}.workflow_schedules.overlap = %(overlap_1)s AND (SELECT {schema}.workflow_runs.status 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id = {schema}.workflow_schedules.last_run_id) IS NOT NULL AND (SELECT {schema}.workflow_runs.status 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id = {schema}.workflow_schedules.last_run_id) IN (%(param_1)s, %(param_2)s, %(param_3)s)) ORDER BY {schema}.workflow_schedules.next_fire_at, {schema}.workflow_schedules.schedule_id 
 LIMIT %(p_limit)s;
BEGIN;
UPDATE {schema}.workflow_schedules SET next_fire_at=%(p_nfa0)s, last_fired_at=%(p_lfa0)s, last_run_id=%(p_lri0)s WHERE {schema}.workflow_schedules.schedule_id = %(p_sid0)s AND {schema}.workflow_schedules.next_fire_at = %(p_seen_nfa0)s AND {schema}.workflow_schedules.updated_at = %(p_seen_updated0)s AND {schema}.workflow_schedules.enabled = true;
SET @wf_m0 = ROW_COUNT();
INSERT INTO {schema}.workflow_runs (run_id, workflow_id, workflow_version, status, input, lease_token, next_event_index, created_at, updated_at, ready_at) SELECT %(p_lri0)s AS anon_1, {schema}.workflow_schedules.workflow_id, {schema}.workflow_schedules.workflow_version, %(b3_param_1)s AS anon_2, {schema}.workflow_schedules.input, %(b3_param_2)s AS anon_3, %(b3_param_3)s AS anon_4, %(p_now)s AS anon_5, %(p_now)s AS anon_6, %(p_now)s AS anon_7 
FROM {schema}.workflow_schedules 
WHERE {schema}.workflow_schedules.schedule_id = %(p_sid0)s AND @wf_m0 = 1 AND %(p_fires0)s = true ON DUPLICATE KEY UPDATE run_id = VALUES(run_id);
UPDATE {schema}.workflow_schedules SET next_fire_at=%(p_nfa1)s, last_fired_at=%(p_lfa1)s, last_run_id=%(p_lri1)s WHERE {schema}.workflow_schedules.schedule_id = %(p_sid1)s AND {schema}.workflow_schedules.next_fire_at = %(p_seen_nfa1)s AND {schema}.workflow_schedules.updated_at = %(p_seen_updated1)s AND {schema}.workflow_schedules.enabled = true;
SET @wf_m1 = ROW_COUNT();
INSERT INTO {schema}.workflow_runs (run_id, workflow_id, workflow_version, status, input, lease_token, next_event_index, created_at, updated_at, ready_at) SELECT %(p_lri1)s AS anon_1, {schema}.workflow_schedules.workflow_id, {schema}.workflow_schedules.workflow_version, %(b6_param_1)s AS anon_2, {schema}.workflow_schedules.input, %(b6_param_2)s AS anon_3, %(b6_param_3)s AS anon_4, %(p_now)s AS anon_5, %(p_now)s AS anon_6, %(p_now)s AS anon_7 
FROM {schema}.workflow_schedules 
WHERE {schema}.workflow_schedules.schedule_id = %(p_sid1)s AND @wf_m1 = 1 AND %(p_fires1)s = true ON DUPLICATE KEY UPDATE run_id = VALUES(run_id);
SELECT @wf_m0 AS m0, @wf_m1 AS m1;
COMMIT;

-- list_runs: 1 round trip(s)
SELECT {schema}.workflow_runs.run_id, {schema}.workflow_runs.workflow_id, {schema}.workflow_runs.workflow_version, {schema}.workflow_runs.status, {schema}.workflow_runs.input, {schema}.workflow_runs.output, {schema}.workflow_runs.error, {schema}.workflow_runs.wait_kind, {schema}.workflow_runs.wait_step_id, {schema}.workflow_runs.wait_key, {schema}.workflow_runs.wait_meta, {schema}.workflow_runs.wake_at, {schema}.workflow_runs.lease_owner, {schema}.workflow_runs.lease_token, {schema}.workflow_runs.lease_expires_at, {schema}.workflow_runs.next_event_index, {schema}.workflow_runs.created_at, {schema}.workflow_runs.updated_at, {schema}.workflow_runs.ready_at, {schema}.workflow_runs.queue, {schema}.workflow_runs.priority, {schema}.workflow_runs.partition_key, {schema}.workflow_runs.deadline_at, {schema}.workflow_runs.parent_run_id, {schema}.workflow_runs.parent_policy 
FROM {schema}.workflow_runs ORDER BY {schema}.workflow_runs.created_at DESC, {schema}.workflow_runs.run_id DESC 
 LIMIT %(p_limit)s;

-- load_run: 1 round trip(s)
SELECT {schema}.workflow_runs.run_id, {schema}.workflow_runs.workflow_id, {schema}.workflow_runs.workflow_version, {schema}.workflow_runs.status, {schema}.workflow_runs.input, {schema}.workflow_runs.output, {schema}.workflow_runs.error, {schema}.workflow_runs.wait_kind, {schema}.workflow_runs.wait_step_id, {schema}.workflow_runs.wait_key, {schema}.workflow_runs.wait_meta, {schema}.workflow_runs.wake_at, {schema}.workflow_runs.lease_owner, {schema}.workflow_runs.lease_token, {schema}.workflow_runs.lease_expires_at, {schema}.workflow_runs.next_event_index, {schema}.workflow_runs.created_at, {schema}.workflow_runs.updated_at, {schema}.workflow_runs.ready_at, {schema}.workflow_runs.queue, {schema}.workflow_runs.priority, {schema}.workflow_runs.partition_key, {schema}.workflow_runs.deadline_at, {schema}.workflow_runs.parent_run_id, {schema}.workflow_runs.parent_policy 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id = %(p_run_id)s;
