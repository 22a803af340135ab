-- schema.sql - the tax bureau's own database (qiao-tax): 存量房交易税收
-- 征管 (taxes on the transfer of a second-hand property), and the
-- registration of newly established enterprises as taxpayers (新办纳税人
-- 套餐 of 企业开办, at the end of this file).
--
-- The base data the bureau keeps (存量房计税价格评估 per 不动产单元, the
-- buyers' household housing for 契税 relief, 欠税 of taxpayers, the rate
-- table with its conditions) and what it records: the filings received
-- from the housing bureau, the assessments (核定) with their items (税目)
-- and the 税票号 of every payment.  Money is INTEGER fen, rates INTEGER
-- ppm, areas INTEGER dm², dates TEXT 'YYYY-MM-DD' (China Standard Time),
-- instants INTEGER ms UTC.  Certificate numbers are stored normalised
-- (half-width brackets).
--
-- Taxes are collected at assessment: the parties of a 存量房 transfer sign
-- the 三方协议 (taxpayer, bank, treasury) at the 一窗 counter, so every
-- item due is deducted at once and gets its 税票号 (电子缴税付款凭证号).

-- 存量房计税价格评估 (the bureau's valuation base): per unit, the 评估价
-- that sets the floor of the 计税价格, and the seller's holding.
CREATE TABLE property_valuation (
  unit_no            TEXT PRIMARY KEY,           -- 不动产单元号 (BDCDYH)
  cert_no            TEXT NOT NULL,              -- 不动产权证书号 (BDCQZH), normalised
  address            TEXT NOT NULL,              -- 房屋坐落
  building_area_dm2  INTEGER NOT NULL CHECK (building_area_dm2 > 0), -- 建筑面积
  usage              TEXT NOT NULL,              -- 房屋用途, e.g. 住宅
  assessed_price_fen INTEGER NOT NULL CHECK (assessed_price_fen > 0), -- 评估价
  acquired_date      TEXT NOT NULL,              -- 取得日期 (the seller's 契税完税 / 登记 date)
  seller_only_home   INTEGER NOT NULL CHECK (seller_only_home IN (0, 1)), -- 是否家庭唯一住房
  valued_date        TEXT NOT NULL               -- 评估基准日
);

-- 家庭住房情况 (homes the buyer's household already owns), from the
-- 家庭住房情况查询 with the housing bureau; decides the 契税 relief.
CREATE TABLE buyer_housing (
  id_no        TEXT PRIMARY KEY,                 -- 证件号码
  id_type      TEXT NOT NULL CHECK (id_type IN ('RESIDENT_ID', 'USCC')),
  name         TEXT NOT NULL,
  homes_owned  INTEGER NOT NULL CHECK (homes_owned >= 0), -- 家庭已有住房套数
  checked_date TEXT NOT NULL                     -- 查询日期
);

-- 欠税信息 (tax arrears): a party with OUTSTANDING arrears is refused.
CREATE TABLE tax_arrears (
  arrears_no  TEXT PRIMARY KEY,                  -- 欠税编号
  id_type     TEXT NOT NULL CHECK (id_type IN ('RESIDENT_ID', 'USCC')),
  id_no       TEXT NOT NULL,                     -- 纳税人识别号 / 证件号码
  name        TEXT NOT NULL,
  tax_type    INTEGER NOT NULL,                  -- TaxType
  tax_name    TEXT NOT NULL,                     -- 税种
  period      TEXT NOT NULL,                     -- 所属期
  amount_fen  INTEGER NOT NULL CHECK (amount_fen > 0), -- 欠税金额
  status      TEXT NOT NULL CHECK (status IN ('OUTSTANDING', 'CLEARED')),
  notice_date TEXT NOT NULL                      -- 催缴日期
);
CREATE INDEX tax_arrears_by_id ON tax_arrears(id_no, status);

-- 税率表 (rate table): for each tax and payer role the first row (by
-- rate_id) whose conditions hold applies; NULL = no condition.
--   base: PRICE (计税价格), PRICE_EX_VAT (计税价格 / (1 + rate): 增值税),
--         PRICE_NET (计税价格 - 增值税), VAT (增值税额: 附加税费).
CREATE TABLE tax_rate (
  rate_id        INTEGER PRIMARY KEY,
  tax_type       INTEGER NOT NULL CHECK (tax_type BETWEEN 1 AND 9), -- TaxType
  tax_name       TEXT NOT NULL,                  -- 税种名称
  payer_role     TEXT NOT NULL CHECK (payer_role IN ('SELLER', 'BUYER')),
  base           TEXT NOT NULL CHECK (base IN ('PRICE', 'PRICE_EX_VAT', 'PRICE_NET', 'VAT')),
  rate_ppm       INTEGER NOT NULL CHECK (rate_ppm BETWEEN 0 AND 1000000),
  area_min_dm2   INTEGER,                        -- 建筑面积 ≥
  area_max_dm2   INTEGER,                        -- 建筑面积 ≤
  homes_min      INTEGER,                        -- 买方家庭已有住房 ≥ (NULL: also when unknown)
  homes_max      INTEGER,                        -- 买方家庭已有住房 ≤
  hold_min_years INTEGER,                        -- 卖方持有年限 ≥
  hold_max_years INTEGER,                        -- 卖方持有年限 <
  only_home      INTEGER CHECK (only_home IN (0, 1)), -- 卖方家庭唯一住房
  basis          TEXT NOT NULL,                  -- 政策依据
  effective_from TEXT NOT NULL,
  effective_to   TEXT                            -- NULL = in force
);

-- 备案信息 (filing notices received from the housing bureau).
CREATE TABLE filing_notice (
  contract_no         TEXT PRIMARY KEY,          -- 网签合同编号
  filing_no           TEXT NOT NULL,             -- 备案编号
  unit_no             TEXT NOT NULL,
  cert_no             TEXT NOT NULL,
  price_fen           INTEGER NOT NULL,          -- 成交价
  escrow_agreement_no TEXT,                      -- 资金监管协议编号
  escrow_amount_fen   INTEGER,                   -- 监管金额
  filed_ms            INTEGER NOT NULL,          -- 备案时间
  received_ms         INTEGER NOT NULL,
  request_hash        TEXT NOT NULL,
  requester           TEXT NOT NULL,
  case_id             TEXT
);

-- 核定 (assessments), one per contract.
CREATE TABLE tax_assessment (
  assessment_no      TEXT PRIMARY KEY,           -- 核定编号 (税务事项通知书号)
  contract_no        TEXT NOT NULL UNIQUE,       -- 网签合同编号 (idempotency key)
  filing_no          TEXT NOT NULL,              -- 备案编号
  unit_no            TEXT NOT NULL,
  cert_no            TEXT NOT NULL,
  declared_price_fen INTEGER NOT NULL,           -- 申报成交价
  assessed_price_fen INTEGER NOT NULL,           -- 计税价格 = max(成交价, 评估价)
  building_area_dm2  INTEGER NOT NULL,
  hold_years         INTEGER NOT NULL,           -- 卖方持有年限
  buyer_homes        INTEGER,                    -- 买方家庭已有住房 (NULL: unknown)
  status             TEXT NOT NULL CHECK (status IN ('ASSESSED', 'PAID', 'EXEMPT')),
  total_due_fen      INTEGER NOT NULL,
  total_paid_fen     INTEGER NOT NULL,
  cleared_ms         INTEGER,                    -- 完税时间
  request_hash       TEXT NOT NULL,
  requester          TEXT NOT NULL,
  case_id            TEXT,
  created_ms         INTEGER NOT NULL
);

-- 当事人 (parties of an assessment).
CREATE TABLE tax_party (
  assessment_no TEXT NOT NULL REFERENCES tax_assessment(assessment_no),
  role          TEXT NOT NULL CHECK (role IN ('SELLER', 'BUYER')),
  seq           INTEGER NOT NULL,
  name          TEXT NOT NULL,
  id_type       TEXT NOT NULL CHECK (id_type IN ('RESIDENT_ID', 'USCC')),
  id_no         TEXT NOT NULL,
  PRIMARY KEY (assessment_no, role, seq)
);

-- 税目明细 (items): one per tax and payer, with the 税票号 once paid.
CREATE TABLE tax_item (
  assessment_no    TEXT NOT NULL REFERENCES tax_assessment(assessment_no),
  seq              INTEGER NOT NULL,
  tax_type         INTEGER NOT NULL,
  tax_name         TEXT NOT NULL,
  rate_id          INTEGER REFERENCES tax_rate(rate_id),
  payer_role       TEXT NOT NULL CHECK (payer_role IN ('SELLER', 'BUYER')),
  payer_name       TEXT NOT NULL,
  payer_id_type    TEXT NOT NULL,
  payer_id_no      TEXT NOT NULL,
  taxable_base_fen INTEGER NOT NULL,             -- 计税依据
  rate_ppm         INTEGER NOT NULL,             -- 税率
  amount_due_fen   INTEGER NOT NULL,             -- 应纳税额
  amount_paid_fen  INTEGER NOT NULL,             -- 已缴税额
  voucher_no       TEXT UNIQUE,                  -- 税票号
  paid_ms          INTEGER,                      -- 缴款时间
  PRIMARY KEY (assessment_no, seq)
);

-- ---- 新办纳税人套餐 (企业开办) ------------------------------------------

-- 主管税务机关 (tax offices), by the administrative division of the
-- taxpayer's USCC (its characters 3-8); the row of the city (150600) takes
-- a division without its own office.
CREATE TABLE tax_office (
  area_code   TEXT PRIMARY KEY CHECK (length(area_code) = 6), -- 行政区划代码 (GB/T 2260)
  office_code TEXT NOT NULL CHECK (length(office_code) = 11), -- 税务机关代码
  office_name TEXT NOT NULL
);

-- 非正常户 (taxpayers recognised as abnormal: they stopped filing and
-- cannot be reached).  While one is ABNORMAL, its legal representative and
-- its financial officer get no new taxpayer registration for another
-- enterprise (the 非正常户 关联人员 control of the bureaus' 新办企业 risk
-- screening [unverified]).
CREATE TABLE abnormal_taxpayer (
  taxpayer_id        TEXT PRIMARY KEY,           -- 纳税人识别号 (USCC)
  taxpayer_name      TEXT NOT NULL,
  legal_rep_name     TEXT NOT NULL,              -- 法定代表人
  legal_rep_id       TEXT NOT NULL,              -- 其居民身份证号码
  finance_officer_id TEXT,                       -- 财务负责人 居民身份证号码
  recognised_date    TEXT NOT NULL,              -- 认定非正常户日期
  status             TEXT NOT NULL CHECK (status IN ('ABNORMAL', 'LIFTED')), -- LIFTED: 已解除
  lifted_date        TEXT
);
CREATE INDEX abnormal_taxpayer_by_rep ON abnormal_taxpayer(legal_rep_id, status);
CREATE INDEX abnormal_taxpayer_by_fin ON abnormal_taxpayer(finance_officer_id, status);

-- 税费种认定规则 (levy rules): every row in force whose vat_type is NULL
-- or the registration's is a levy of a new taxpayer.
CREATE TABLE levy_rule (
  rule_id        INTEGER PRIMARY KEY,
  vat_type       TEXT CHECK (vat_type IN ('SMALL_SCALE', 'GENERAL')), -- NULL: either
  tax_type       INTEGER NOT NULL CHECK (tax_type BETWEEN 1 AND 10), -- TaxType
  tax_name       TEXT NOT NULL,                  -- 征收项目
  item_name      TEXT NOT NULL,                  -- 征收品目
  rate_ppm       INTEGER NOT NULL CHECK (rate_ppm BETWEEN 0 AND 1000000), -- 税率 / 征收率
  period         TEXT NOT NULL CHECK (period IN ('MONTHLY', 'QUARTERLY', 'PER_TRANSACTION', 'ANNUAL')),
  basis          TEXT NOT NULL,                  -- 政策依据
  effective_from TEXT NOT NULL,
  effective_to   TEXT                            -- NULL = in force
);

-- 发票票种核定规则 (invoice rules): the initial monthly credit line
-- (开具金额总额度) of a new taxpayer per VAT type and invoice type.
CREATE TABLE invoice_rule (
  vat_type         TEXT NOT NULL CHECK (vat_type IN ('SMALL_SCALE', 'GENERAL')),
  invoice_type     TEXT NOT NULL CHECK (invoice_type IN ('DIGITAL_ORDINARY', 'DIGITAL_SPECIAL')),
  credit_limit_fen INTEGER NOT NULL CHECK (credit_limit_fen > 0),
  basis            TEXT NOT NULL,
  PRIMARY KEY (vat_type, invoice_type)
);

-- 新办纳税人套餐 (taxpayer registrations), one per registration number; a
-- taxpayer has at most one ACTIVE registration.
CREATE TABLE taxpayer_registration (
  registration_no        TEXT PRIMARY KEY,       -- 套餐申请编号 (idempotency key)
  taxpayer_id            TEXT NOT NULL,          -- 纳税人识别号 = USCC
  taxpayer_name          TEXT NOT NULL,
  licence_id             TEXT NOT NULL,          -- 电子营业执照标识
  enterprise_type        TEXT NOT NULL,          -- 登记注册类型
  registered_address     TEXT NOT NULL,
  established_date       TEXT NOT NULL,
  registered_capital_fen INTEGER NOT NULL CHECK (registered_capital_fen > 0),
  business_scope         TEXT NOT NULL,
  vat_type               TEXT NOT NULL CHECK (vat_type IN ('SMALL_SCALE', 'GENERAL')),
  office_code            TEXT NOT NULL,          -- 主管税务机关
  office_name            TEXT NOT NULL,
  status                 TEXT NOT NULL CHECK (status IN ('ACTIVE', 'CANCELLED')),
  registered_ms          INTEGER NOT NULL,
  cancelled_ms           INTEGER,
  cancel_reason          TEXT,
  request_hash           TEXT NOT NULL,
  requester              TEXT NOT NULL,
  case_id                TEXT
);
CREATE UNIQUE INDEX taxpayer_registration_active ON taxpayer_registration(taxpayer_id) WHERE status = 'ACTIVE';

-- 登记信息 人员 (the people of a registration): 法定代表人, 财务负责人,
-- 办税人 and the investors with their subscriptions.
CREATE TABLE registration_party (
  registration_no        TEXT NOT NULL REFERENCES taxpayer_registration(registration_no),
  role                   TEXT NOT NULL CHECK (role IN ('LEGAL_REP', 'FINANCE', 'TAX_OFFICER', 'INVESTOR')),
  seq                    INTEGER NOT NULL,
  name                   TEXT NOT NULL,
  id_type                TEXT NOT NULL CHECK (id_type IN ('RESIDENT_ID', 'USCC')),
  id_no                  TEXT NOT NULL,
  subscribed_capital_fen INTEGER,                -- investors: 认缴出资额
  contribution_method    TEXT,                   -- investors: 出资方式
  contribution_due_date  TEXT,                   -- investors: 认缴出资期限
  PRIMARY KEY (registration_no, role, seq)
);

-- 税费种认定结果 (levies of a registration).
CREATE TABLE registration_levy (
  registration_no TEXT NOT NULL REFERENCES taxpayer_registration(registration_no),
  seq             INTEGER NOT NULL,
  rule_id         INTEGER NOT NULL REFERENCES levy_rule(rule_id),
  tax_type        INTEGER NOT NULL,
  tax_name        TEXT NOT NULL,
  item_name       TEXT NOT NULL,
  rate_ppm        INTEGER NOT NULL,
  period          TEXT NOT NULL,
  valid_from      TEXT NOT NULL,
  PRIMARY KEY (registration_no, seq)
);

-- 发票票种核定结果 (invoice approvals of a registration).
CREATE TABLE registration_invoice (
  registration_no  TEXT NOT NULL REFERENCES taxpayer_registration(registration_no),
  seq              INTEGER NOT NULL,
  invoice_type     TEXT NOT NULL,
  credit_limit_fen INTEGER NOT NULL,
  PRIMARY KEY (registration_no, seq)
);

-- 单据编号 (document number sequences).
CREATE TABLE doc_sequence (
  seq_name   TEXT PRIMARY KEY,
  next_value INTEGER NOT NULL
);
