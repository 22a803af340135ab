-- schema.sql - the tax bureau's own database (qiao-tax): 存量房交易税收
-- 征管 (taxes on the transfer of a second-hand property).
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

-- 单据编号 (document number sequences).
CREATE TABLE doc_sequence (
  seq_name   TEXT PRIMARY KEY,
  next_value INTEGER NOT NULL
);
