-- schema.sql - the database of 鄂尔多斯市不动产登记中心 (the real-estate
-- registration centre) as its adapter qiao-registry sees it.
--
-- Column names follow the registry systems' own abbreviations (DOMAIN.md
-- "Register field names"): BDCDYH 不动产单元号, BDCQZH 不动产权证书号,
-- BDCDJZMH 不动产登记证明号, QLR 权利人, DYSW 抵押顺位, SFCZYD 是否存在禁止或限制
-- 转让约定, JYJG 交易价格, SLBH 受理编号, and the usual pinyin initials for
-- the rest (ZL 坐落, GYFS 共有方式, QSZT 权属状态, DJSJ 登簿时间 ...).
--
-- Conventions: amounts in fen (registries often keep 万元; this register
-- keeps fen so nothing is ever rounded), areas in dm², instants in ms since
-- 1970 UTC, document dates "YYYY-MM-DD".  Certificate and proof numbers are
-- stored with half-width brackets (normalised), so that equality is
-- comparison.  QSZT: 1 现势 (in force), 2 历史 (closed / cancelled).
-- Party identity: ZJZL 证件种类 1 居民身份证 2 统一社会信用代码 (the values of
-- qiao.v1.SubjectType), ZJH 证件号.

-- 不动产单元 (real-estate units, GB/T 37346-2019 不动产单元代码).
CREATE TABLE bdcdy (
  bdcdyh    TEXT PRIMARY KEY CHECK (length(bdcdyh) = 28), -- 不动产单元号
  xzqdm     TEXT NOT NULL CHECK (length(xzqdm) = 6),     -- 行政区划代码 (GB/T 2260)
  zl        TEXT NOT NULL,                               -- 坐落
  ghyt      TEXT,                                        -- 房屋规划用途, e.g. 住宅
  tdyt      TEXT,                                        -- 土地用途, e.g. 城镇住宅用地
  qllx      TEXT NOT NULL,                               -- 权利类型
  qlxz      TEXT,                                        -- 权利性质
  jzmj      INTEGER NOT NULL DEFAULT 0,                  -- 房屋建筑面积, dm²
  zdmj      INTEGER NOT NULL DEFAULT 0,                  -- 共有宗地面积, dm²
  tdsyqssj  TEXT,                                        -- 土地使用期限起
  tdsyjssj  TEXT                                         -- 土地使用期限止
);

-- 房地产权 (ownership titles), current and historical: one 现势 title per
-- unit; a transfer closes the seller's and creates the buyer's.
CREATE TABLE fdcq (
  id        INTEGER PRIMARY KEY,
  bdcdyh    TEXT NOT NULL REFERENCES bdcdy (bdcdyh),
  bdcqzh    TEXT NOT NULL UNIQUE,                        -- 不动产权证书号 (normalised)
  gyfs      INTEGER NOT NULL CHECK (gyfs BETWEEN 0 AND 3), -- 共有方式 0 单独 1 共同 2 按份 3 其他
  qszt      INTEGER NOT NULL CHECK (qszt IN (1, 2)),     -- 权属状态
  djsj      INTEGER NOT NULL,                            -- 登簿时间
  zxsj      INTEGER,                                     -- 注销时间 (when closed)
  slbh      TEXT,                                        -- 受理编号 that registered it
  zxslbh    TEXT,                                        -- 受理编号 that closed it
  jyjg      INTEGER,                                     -- 交易价格, fen (transfers)
  fj        TEXT                                         -- 附记
);
CREATE UNIQUE INDEX fdcq_xs ON fdcq (bdcdyh) WHERE qszt = 1;

-- 权利人 (right holders) of a title.
CREATE TABLE qlr (
  id        INTEGER PRIMARY KEY,
  fdcq_id   INTEGER NOT NULL REFERENCES fdcq (id),
  sxh       INTEGER NOT NULL,                            -- 顺序号
  qlrmc     TEXT NOT NULL,                               -- 权利人名称
  zjzl      INTEGER NOT NULL CHECK (zjzl IN (1, 2)),     -- 证件种类
  zjh       TEXT NOT NULL,                               -- 证件号
  qlbl      TEXT,                                        -- 权利比例 / 份额
  UNIQUE (fdcq_id, sxh)
);

-- 抵押权 (mortgages), current and cancelled.  The mortgage follows the
-- unit (民法典 §406), so it is kept against BDCDYH, not against a title.
CREATE TABLE dyaq (
  id        INTEGER PRIMARY KEY,
  bdcdyh    TEXT NOT NULL REFERENCES bdcdy (bdcdyh),
  bdcdjzmh  TEXT NOT NULL UNIQUE,                        -- 不动产登记证明号 (normalised)
  dysw      INTEGER NOT NULL CHECK (dysw BETWEEN 1 AND 99), -- 抵押顺位
  dyqr      TEXT NOT NULL,                               -- 抵押权人
  dyqrzjh   TEXT NOT NULL,                               -- 抵押权人 统一社会信用代码
  dyfs      INTEGER NOT NULL CHECK (dyfs IN (1, 2)),     -- 抵押方式 1 一般 2 最高额
  bdbzzqse  INTEGER NOT NULL DEFAULT 0,                  -- 被担保主债权数额, fen
  zgzqse    INTEGER NOT NULL DEFAULT 0,                  -- 最高债权额, fen
  zwlxqssj  TEXT NOT NULL,                               -- 债务履行期限起
  zwlxjssj  TEXT NOT NULL,                               -- 债务履行期限止
  dbfw      TEXT,                                        -- 担保范围
  sfczyd    INTEGER NOT NULL DEFAULT 0 CHECK (sfczyd IN (0, 1)), -- 禁止或限制转让约定
  ydnr      TEXT,                                        -- 约定内容
  dyhth     TEXT,                                        -- 抵押合同号
  dkhth     TEXT,                                        -- 贷款合同号
  qszt      INTEGER NOT NULL CHECK (qszt IN (1, 2)),
  djsj      INTEGER NOT NULL,                            -- 登簿时间
  slbh      TEXT,                                        -- 受理编号 (首次登记)
  zxsj      INTEGER,                                     -- 注销登簿时间
  zxyy      INTEGER,                                     -- 注销原因 (MortgageCancellationReason)
  zxyysm    TEXT,                                        -- 注销原因说明
  jqzmbh    TEXT,                                        -- 结清证明编号
  zxslbh    TEXT                                         -- 注销 受理编号
);
CREATE UNIQUE INDEX dyaq_sw ON dyaq (bdcdyh, dysw) WHERE qszt = 1;

-- 抵押人 (DYR) and 债务人 (ZWR) of a mortgage.
CREATE TABLE dyaq_dsr (
  id        INTEGER PRIMARY KEY,
  dyaq_id   INTEGER NOT NULL REFERENCES dyaq (id),
  lx        TEXT NOT NULL CHECK (lx IN ('DYR', 'ZWR')),
  sxh       INTEGER NOT NULL,
  mc        TEXT NOT NULL,
  zjzl      INTEGER NOT NULL CHECK (zjzl IN (1, 2)),
  zjh       TEXT NOT NULL,
  UNIQUE (dyaq_id, lx, sxh)
);

-- 抵押顺位变更 (rank changes), e.g. after the first-rank mortgage is
-- cancelled in 带押过户 step 9.
CREATE TABLE dysw_bg (
  id        INTEGER PRIMARY KEY,
  bdcdjzmh  TEXT NOT NULL REFERENCES dyaq (bdcdjzmh),    -- the mortgage whose rank changed
  bdcdyh    TEXT NOT NULL,
  ysw       INTEGER NOT NULL,                            -- 原顺位
  xsw       INTEGER NOT NULL,                            -- 现顺位
  bgsj      INTEGER NOT NULL,                            -- 变更时间
  zx_bdcdjzmh TEXT,                                      -- the cancelled mortgage that caused it
  slbh      TEXT
);

-- 查封登记 (seizures by courts and other authorities).
CREATE TABLE cfdj (
  id        INTEGER PRIMARY KEY,
  bdcdyh    TEXT NOT NULL REFERENCES bdcdy (bdcdyh),
  cflx      TEXT NOT NULL,                               -- 查封 / 预查封 / 轮候查封
  cfjg      TEXT NOT NULL,                               -- 查封机关
  cfwh      TEXT NOT NULL,                               -- 查封文号
  cfqssj    TEXT NOT NULL,                               -- 查封期限起
  cfjssj    TEXT,                                        -- 查封期限止
  qszt      INTEGER NOT NULL CHECK (qszt IN (1, 2)),
  djsj      INTEGER NOT NULL
);

-- 异议登记 (objections).
CREATE TABLE yydj (
  id        INTEGER PRIMARY KEY,
  bdcdyh    TEXT NOT NULL REFERENCES bdcdy (bdcdyh),
  yysx      TEXT NOT NULL,                               -- 异议事项
  sqr       TEXT NOT NULL,                               -- 申请人
  sqrzjh    TEXT NOT NULL,                               -- 申请人证件号
  qszt      INTEGER NOT NULL CHECK (qszt IN (1, 2)),
  djsj      INTEGER NOT NULL
);

-- 预告登记 (pre-notices: the 双预告 model).
CREATE TABLE ygdj (
  id        INTEGER PRIMARY KEY,
  bdcdyh    TEXT NOT NULL REFERENCES bdcdy (bdcdyh),
  ygdjzl    TEXT NOT NULL,                               -- 预告登记种类: 转移预告 / 抵押预告
  qszt      INTEGER NOT NULL CHECK (qszt IN (1, 2)),
  djsj      INTEGER NOT NULL
);

-- 原抵押权人意见 (old lenders' consents, 带押过户 step 2).
-- ZT 1 有效, 2 已撤回, 3 已使用 (the combined registration relied on it),
-- 4 已替代 (a newer opinion for the same mortgage replaced it).
CREATE TABLE ydyqryj (
  sjbh      TEXT PRIMARY KEY,                            -- 收件编号
  tysbh     TEXT NOT NULL UNIQUE,                        -- 同意书编号 (idempotency key)
  bdcdyh    TEXT NOT NULL REFERENCES bdcdy (bdcdyh),
  bdcdjzmh  TEXT NOT NULL REFERENCES dyaq (bdcdjzmh),    -- 原不动产登记证明号
  bdcqzh    TEXT,                                        -- 不动产权证书号 as given
  dyqr      TEXT NOT NULL,
  dyqrzjh   TEXT NOT NULL,
  jqje      INTEGER NOT NULL CHECK (jqje > 0),           -- 结清金额, fen
  tysyxq    INTEGER NOT NULL,                            -- 同意书有效期至, ms
  dkhth     TEXT,
  jssj      INTEGER NOT NULL,                            -- 接收时间
  zt        INTEGER NOT NULL CHECK (zt BETWEEN 1 AND 4),
  chsj      INTEGER,                                     -- 撤回时间
  chyy      INTEGER,                                     -- 撤回原因 (UnwindReason)
  chsm      TEXT,                                        -- 撤回说明
  bjbh      TEXT,                                        -- 报价编号 named by the withdrawal
  sy_slbh   TEXT,                                        -- 受理编号 that used it
  sqf       TEXT NOT NULL,                               -- 发送成员 (member id)
  jbr       TEXT NOT NULL,                               -- 经办人
  ajbh      TEXT                                         -- 办件编号 (case id)
);

-- 完税信息 (tax clearances received from the tax bureau, step 5).
CREATE TABLE wsxx (
  hdbh      TEXT PRIMARY KEY,                            -- 核定编号 (idempotency key)
  htbh      TEXT NOT NULL,                               -- 网签合同编号
  bdcdyh    TEXT NOT NULL REFERENCES bdcdy (bdcdyh),
  wszt      INTEGER NOT NULL,                            -- 完税状态 (TaxClearanceStatus)
  jsjg      INTEGER NOT NULL,                            -- 计税价格, fen
  ynse      INTEGER NOT NULL,                            -- 应纳税额合计, fen
  yjse      INTEGER NOT NULL,                            -- 已缴税额合计, fen
  wssj      INTEGER NOT NULL,                            -- 完税时间
  jssj      INTEGER NOT NULL,                            -- 接收时间
  sy_slbh   TEXT,
  sqf       TEXT NOT NULL,
  jbr       TEXT NOT NULL,
  ajbh      TEXT
);

-- 税票 (the tax items and their vouchers).
CREATE TABLE wsxx_sp (
  id        INTEGER PRIMARY KEY,
  hdbh      TEXT NOT NULL REFERENCES wsxx (hdbh),
  sz        INTEGER NOT NULL,                            -- 税种 (TaxType)
  szmc      TEXT,
  nsr       TEXT NOT NULL,                               -- 纳税人
  nsrzjzl   INTEGER NOT NULL,
  nsrzjh    TEXT NOT NULL,
  jsyj      INTEGER NOT NULL,                            -- 计税依据, fen
  ynse      INTEGER NOT NULL,
  yjse      INTEGER NOT NULL,
  sphm      TEXT,                                        -- 税票号
  jksj      INTEGER
);

-- 网签备案及资金监管信息 (contract filings received from housing, step 5).
CREATE TABLE baxx (
  babh      TEXT PRIMARY KEY,                            -- 备案编号 (idempotency key)
  htbh      TEXT NOT NULL,                               -- 网签合同编号
  bdcdyh    TEXT NOT NULL REFERENCES bdcdy (bdcdyh),
  bdcqzh    TEXT NOT NULL,
  cjj       INTEGER NOT NULL,                            -- 成交价, fen
  jgxybh    TEXT,                                        -- 资金监管协议编号
  jgje      INTEGER NOT NULL DEFAULT 0,                  -- 监管金额, fen
  basj      INTEGER NOT NULL,                            -- 备案时间
  jssj      INTEGER NOT NULL,                            -- 接收时间
  sy_slbh   TEXT,
  sqf       TEXT NOT NULL,
  jbr       TEXT NOT NULL,
  ajbh      TEXT
);

-- 出卖人 (CMR) and 买受人 (MSR) of a filing.
CREATE TABLE baxx_dsr (
  id        INTEGER PRIMARY KEY,
  babh      TEXT NOT NULL REFERENCES baxx (babh),
  lx        TEXT NOT NULL CHECK (lx IN ('CMR', 'MSR')),
  sxh       INTEGER NOT NULL,
  mc        TEXT NOT NULL,
  zjzl      INTEGER NOT NULL,
  zjh       TEXT NOT NULL
);

-- 登记受理 (applications: the combined 转移登记 + 抵押权首次登记).  ZT is
-- the RegistrationOutcome (2 已登簿, 3 不予登记); JG the result exactly as
-- answered, returned again to a repeated SLBH; SQNR_HASH the SHA-256 of
-- the application body, so a SLBH reused for another application is
-- refused.
CREATE TABLE djsl (
  slbh      TEXT PRIMARY KEY,                            -- 受理编号 (idempotency key)
  djlx      TEXT NOT NULL,                               -- 登记类型
  djms      INTEGER NOT NULL,                            -- 登记模式 (RegistrationMode)
  bdcdyh    TEXT NOT NULL,
  ybdcqzh   TEXT NOT NULL,                               -- 原不动产权证书号
  zt        INTEGER NOT NULL CHECK (zt IN (2, 3)),
  xbdcqzh   TEXT,                                        -- 新不动产权证书号
  bdcdjzmh  TEXT,                                        -- 新抵押 不动产登记证明号
  dzzzbs    TEXT,                                        -- 电子证照标识
  djsj      INTEGER,                                     -- 登簿时间
  bdyy      TEXT,                                        -- 不予登记原因
  jg        BLOB NOT NULL,                               -- CombinedRegistrationResult
  sqnr_hash BLOB NOT NULL,
  sqsj      INTEGER NOT NULL,                            -- 申请时间
  sqf       TEXT NOT NULL,
  jbr       TEXT NOT NULL,
  ajbh      TEXT
);

-- 抵押权注销登记 (cancellations); JG the MortgageCancellationResult as
-- answered, returned again to a repeated request for the same mortgage.
CREATE TABLE zxdj (
  slbh      TEXT PRIMARY KEY,
  bdcdjzmh  TEXT NOT NULL UNIQUE REFERENCES dyaq (bdcdjzmh),
  bdcdyh    TEXT NOT NULL,
  zxyy      INTEGER NOT NULL,
  jg        BLOB NOT NULL,
  sqsj      INTEGER NOT NULL,
  sqf       TEXT NOT NULL,
  jbr       TEXT NOT NULL,
  ajbh      TEXT
);

-- 电子证照 (电子不动产权证书 issued): the licence bytes exactly as signed and
-- the issuer signature over them.
CREATE TABLE dzzz (
  dzzzbs    TEXT PRIMARY KEY,                            -- 电子证照标识 (GB/T 36904)
  zzbh      TEXT NOT NULL UNIQUE,                        -- 证照编号 = 不动产权证书号
  fdcq_id   INTEGER NOT NULL REFERENCES fdcq (id),
  zzlxdm    TEXT NOT NULL,                               -- 证照类型代码
  czzt      TEXT NOT NULL,                               -- 持证主体
  czztdm    TEXT NOT NULL,                               -- 持证主体代码
  czztdmlx  INTEGER NOT NULL,                            -- 持证主体代码类型 (111 / 1)
  bbh       INTEGER NOT NULL,                            -- 版本
  zt        INTEGER NOT NULL,                            -- 状态 (LicenceStatus)
  qfrq      TEXT NOT NULL,                               -- 颁发日期
  zzwj      BLOB NOT NULL,                               -- ElectronicLicence bytes
  qm_keyid  TEXT NOT NULL,
  qm        BLOB NOT NULL,                               -- Ed25519 signature
  qm_yu     TEXT NOT NULL,                               -- signature domain
  qm_sj     INTEGER NOT NULL,                            -- signed at
  cjsj      INTEGER NOT NULL
);

-- 证照事件发布 (outbox of LicenceEvents for the gateway): written in the
-- transaction that changes the licence, published in order by the
-- adapter's background thread; YFB 1 once the gateway answered.
CREATE TABLE zzsj_fb (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  dzzzbs    TEXT NOT NULL REFERENCES dzzz (dzzzbs),
  sjlx      INTEGER NOT NULL,                            -- LicenceEventType
  bbh       INTEGER NOT NULL,
  sj        BLOB NOT NULL,                               -- LicenceEvent bytes
  cjsj      INTEGER NOT NULL,
  yfb       INTEGER NOT NULL DEFAULT 0 CHECK (yfb IN (0, 1)),
  fbsj      INTEGER,
  cs        INTEGER NOT NULL DEFAULT 0,                  -- attempts
  zhcw      TEXT                                         -- last error
);

-- 编号序列 (number sequences per kind and year): BDCQZH, BDCDJZMH, SLBH,
-- SJBH (收件编号).
CREATE TABLE bhxl (
  lx        TEXT NOT NULL,
  nd        INTEGER NOT NULL,
  dqz       INTEGER NOT NULL,                            -- last value issued
  PRIMARY KEY (lx, nd)
);

-- 登记资料查询记录 (who read the register, why, for whom).
CREATE TABLE cxjl (
  id        INTEGER PRIMARY KEY,
  cxsj      INTEGER NOT NULL,
  cxf       TEXT NOT NULL,                               -- 查询成员
  jbr       TEXT NOT NULL,
  cxsy      TEXT NOT NULL,                               -- 查询事由
  ajbh      TEXT,
  sqsbh     TEXT,                                        -- 查询授权书编号
  sqr       TEXT,
  sqrzjh    TEXT,
  bdcdyh    TEXT,
  bdcqzh    TEXT
);
