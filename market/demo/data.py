"""What ``market demo`` seeds: made-up parties, their data assets and listings.

Every party and every data set here is fictional; each unified social credit code is
well-formed (GB 32100-2015) but belongs to no real organisation (the organisation-code
part is ``DM`` and a serial number). Asset content is synthetic, generated from a seed
per asset, and each asset's ``source`` says so.
"""

import json
import random
from dataclasses import dataclass
from typing import Any

from market.accounts.uscc import check_character
from market.listings.schemas import ListingCreate
from market.registry.categories import BY_ID
from market.tools.client import organization_code_check

# The demo's categories (ids of the closed list, market.registry.categories) -> their
# Chinese names (always the first tag as well).
CATEGORIES = {c: BY_ID[c].name_zh for c in ("transport", "logistics", "weather", "energy", "healthcare",
                                            "enterprise_credit")}

# Licence purposes by category (market.listings.schemas.PURPOSES).
PURPOSES = {
    "transport": ("urban_planning", "research", "navigation", "public_service", "product_development"),
    "logistics": ("operations", "statistics", "product_development", "research"),
    "weather": ("research", "insurance", "operations", "product_development", "ai_training"),
    "energy": ("research", "statistics", "operations", "urban_planning"),
    "healthcare": ("research", "public_service", "statistics"),
    "enterprise_credit": ("risk_control", "credit_assessment", "insurance"),
}


def demo_uscc(prefix: str, division: str, serial: int) -> str:
    """A well-formed code of no real organisation: organisation code ``DM<serial>``."""
    body = f"DM{serial:06d}"
    first17 = prefix + division + body + organization_code_check(body)
    return first17 + check_character(first17)


@dataclass(frozen=True)
class PartySpec:
    key: str
    name: str
    kind: str  # enterprise | institution
    roles: tuple[str, ...]
    prefix: str  # 91 enterprise, 12 public institution (事业单位)
    division: str
    serial: int
    source: str = ""  # how its data is obtained (providers)

    @property
    def uscc(self) -> str:
        return demo_uscc(self.prefix, self.division, self.serial)


# The market's own reviewing desk: approves the demo's sign-ups (KYC) and registrations.
OPERATOR = PartySpec("desk", "数据交易所登记审核部 Registration Desk (demo)", "institution", ("operator",),
                     "12", "440300", 1)

PARTIES = (
    PartySpec("pengcheng", "深圳市鹏城交通数据有限公司", "enterprise", ("provider",), "91", "440304", 101,
              "公司自有的公交调度与票务系统"),
    PartySpec("baymobility", "Bay Area Mobility Labs Ltd. 湾区出行实验室", "enterprise", ("provider",), "91", "440305", 102,
              "our own ride-hailing and bike-sharing platforms"),
    PartySpec("shunjie", "顺捷供应链科技（深圳）有限公司", "enterprise", ("buyer", "provider"), "91", "440306", 103,
              "公司自营仓配网络与运输管理系统"),
    PartySpec("nanyue", "南粤气象服务有限公司", "enterprise", ("provider",), "91", "440100", 104,
              "自建地面自动气象站网络与数值预报系统"),
    PartySpec("greenbay", "Greenbay Energy Analytics Co., Ltd.", "enterprise", ("provider",), "91", "441900", 105,
              "smart meters and charging piles operated by the company"),
    PartySpec("gridlab", "深圳能源物联数据有限公司", "enterprise", ("provider",), "91", "440307", 106,
              "公司运维的配电物联网终端"),
    PartySpec("medinst", "华南医学数据研究院 South China Institute of Medical Data", "institution", ("provider",),
              "12", "440300", 107, "合作医院的电子病历与检验系统，经院内去标识化后汇集"),
    PartySpec("xinheng", "信衡企业征信有限公司 Xinheng Credit Reference", "enterprise", ("provider",), "91", "440304",
              108, "公开工商、司法、税务信息与企业授权报送数据的加工"),
    PartySpec("harbor", "Harbor Property Insurance Co., Ltd. 海港财产保险", "enterprise", ("buyer",), "91", "440305", 201),
    PartySpec("sghkbank", "深港联合银行股份有限公司", "enterprise", ("buyer",), "91", "440304", 202),
    PartySpec("planning", "深圳市城市规划设计研究中心", "institution", ("buyer",), "12", "440300", 203),
    PartySpec("navistar", "NaviStar Maps Ltd. 星图导航", "enterprise", ("buyer",), "91", "440305", 204),
    PartySpec("urbanlab", "南方科技创新大学城市计算实验室 Urban Computing Lab", "institution", ("buyer",), "12",
              "440305", 205),
    PartySpec("quickride", "快驰即时配送有限公司 QuickRide Delivery", "enterprise", ("buyer",), "91", "440306", 206),
)

SHOWN_PROVIDER = "pengcheng"  # whose sign-up tokens the first run prints
SHOWN_BUYER = "harbor"


@dataclass(frozen=True)
class AssetSpec:
    provider: str
    category: str
    title: str
    summary: str
    detail: str
    tags: tuple[str, ...] = ()
    fmt: str = "csv"
    price: int = 0  # one-time, yuan (0 and monthly 0: a free plan)
    monthly: int = 0  # subscription per 30 days, yuan
    grade: str = "general"
    personal_info: str = "none"
    export: bool = False
    approval: bool = False
    private_for: str | None = None  # a buyer's key: a private plan for it at 80 % of the price
    legal_basis: str | None = None


_DEID = ("经合作医院伦理委员会审查同意；按 GB/T 37964-2019《个人信息去标识化指南》去标识化，"
         "不含姓名、证件号、联系方式等直接标识符")

A = AssetSpec
ASSETS = (
    # -- 交通 transport -------------------------------------------------------------------------------
    A("pengcheng", "transport", "Shenzhen bus routes 深圳公交线路", "全市一千余条公交线路的走向、站点序列与首末班时间，每日更新。",
      "覆盖深圳市各区常规公交、高峰专线与夜间线路；每条线路给出上下行站点序列、站间距离、首末班时间与发车间隔。"
      "适合出行规划、线网优化与导航产品。", ("公交", "线路", "GTFS"), fmt="GTFS", price=12000, monthly=1500,
      private_for="navistar"),
    A("pengcheng", "transport", "公交刷卡客流（按站点按小时）", "各公交站点分时段上车人次，已聚合到站点与小时，不含个人信息。",
      "由刷卡与扫码乘车记录聚合而成，最小粒度为站点×小时，人次少于 10 的格子已抑制。可用于客流研判、线网评估与商圈分析。",
      ("客流", "刷卡", "站点"), price=30000, monthly=4000, personal_info="anonymized"),
    A("pengcheng", "transport", "Metro OD matrix 地铁站间 OD 矩阵", "地铁站间早晚高峰出行量矩阵，按工作日与周末分别统计。",
      "基于进出站闸机记录计算的站间出行量（OD），按月发布，含早高峰、晚高峰与全日三张矩阵。", ("地铁", "OD", "通勤"),
      price=50000, personal_info="anonymized", approval=True),
    A("pengcheng", "transport", "公交车辆实时到站预测接口数据", "公交车辆 GPS 与到站预测的历史归档，每 30 秒一帧。",
      "车辆定位、速度、下一站与预计到站时间，历史数据按日打包，可用于到站预测模型训练与评估。", ("实时", "GPS", "到站"),
      fmt="jsonl", monthly=6000),
    A("baymobility", "transport", "Bike-sharing trips, Nanshan 南山共享单车骑行", "南山区共享单车骑行起讫点与时长，位置已网格化。",
      "每条记录为一次骑行的起止网格（250 米）、开始时间（精确到 15 分钟）与骑行时长，用于慢行系统规划与停放点选址。",
      ("共享单车", "慢行", "bike"), price=8000, personal_info="anonymized", export=True),
    A("baymobility", "transport", "网约车订单热力（网格×小时）", "全市网约车上车点热力，按 500 米网格与小时聚合。",
      "由平台订单聚合，反映出行需求的时空分布；可用于交通需求预测、运力调度研究与商业选址。", ("网约车", "热力", "需求"),
      price=20000, monthly=2500, personal_info="anonymized"),
    A("baymobility", "transport", "Road speed index 道路运行速度指数", "主要干道与快速路分时段平均车速与拥堵指数。",
      "由浮动车轨迹计算的路段平均速度、拥堵等级与同比变化，按 5 分钟粒度发布。", ("拥堵", "路况", "速度"),
      monthly=3000, export=True),
    A("pengcheng", "transport", "停车场泊位占用率", "全市 800 余个公共停车场的泊位占用率，15 分钟一更新。",
      "停车场位置、总泊位与分时占用率，可用于停车诱导、需求研究与城市更新评估。", ("停车", "泊位")),
    A("baymobility", "transport", "交通事故时空分布（脱敏）", "道路交通事故的发生时间、网格位置与事故类型统计。",
      "事故记录去除车牌、当事人信息，仅保留网格、时段、天气与类型，用于道路安全研究与保险定价。", ("事故", "安全"),
      price=15000, personal_info="anonymized", grade="important"),
    # -- 物流 logistics ---------------------------------------------------------------------------------
    A("shunjie", "logistics", "Warehouse throughput 仓库吞吐量", "华南 26 个仓库的日入库、出库与库存周转统计。",
      "按仓库、品类与日期统计的入库件数、出库件数、库容利用率与周转天数。", ("仓储", "吞吐"), price=18000, monthly=2000),
    A("shunjie", "logistics", "城配车辆在途时效", "城市配送车辆从出仓到签收的在途时长分布。",
      "按线路、时段与车型统计的在途时长分位数，可用于时效承诺与路径优化。", ("城配", "时效", "配送"), monthly=2800),
    A("shunjie", "logistics", "Parcel volume by district 分区快递量", "按街道与日统计的快递揽收与派送件数。",
      "覆盖深圳、东莞两地，反映电商消费与末端配送压力，可用于网点规划与商圈研究。", ("快递", "电商"), price=9000,
      export=True),
    A("shunjie", "logistics", "冷链温度监测记录", "冷链车辆与冷库的温度曲线，每分钟一个采样点。",
      "车载与库内温度传感器读数，含超温报警标记，可用于冷链质量评估与保险理赔核验。", ("冷链", "温度", "IoT"),
      fmt="jsonl", price=6000, monthly=800),
    A("baymobility", "logistics", "即时配送骑手运力分布", "外卖与即时配送骑手在线人数，按网格与 15 分钟聚合。",
      "反映即时配送运力的时空供给，已聚合、不含任何骑手身份信息。", ("即时配送", "运力"), price=12000,
      personal_info="anonymized"),
    A("shunjie", "logistics", "Port container throughput 港口集装箱吞吐", "盐田、蛇口港区集装箱吞吐量与船舶靠泊统计。",
      "按港区、航线与周统计的 TEU 吞吐量、船舶靠泊次数与平均在港时间。", ("港口", "集装箱", "航运"), price=25000,
      export=True),
    A("shunjie", "logistics", "货车通行轨迹（脱敏）", "重型货车在珠三角高速与国道上的通行轨迹，车牌已替换为随机编号。",
      "每 30 秒一个定位点，随机编号每月轮换；可用于货运走廊分析与物流园区规划。", ("货车", "轨迹"), price=40000,
      personal_info="deidentified", grade="important", approval=True,
      legal_basis="车辆运营企业依合同授权提供；车牌号以每月轮换的随机编号替代"),
    A("shunjie", "logistics", "跨境电商包裹清关时效", "跨境电商进口包裹从入境到放行的时长统计。",
      "按口岸、商品类别与周统计的清关时长分布与查验比例。", ("跨境", "清关"), price=7000),
    A("shunjie", "logistics", "Last-mile delivery failures 末端派送失败原因", "末端派送失败与改派的原因分类统计。",
      "按街道与原因（无人签收、地址错误、拒收等）统计，可用于末端网点与智能柜布局。", ("末端", "派送")),
    # -- 气象 weather -----------------------------------------------------------------------------------
    A("nanyue", "weather", "Hourly station observations 逐小时地面观测", "全省 300 余个自动站逐小时气温、降水、风与湿度。",
      "经质量控制的地面自动气象站观测，含站点经纬度与海拔，适合模型训练与灾害研究。", ("观测", "自动站"),
      price=10000, monthly=1200, export=True),
    A("nanyue", "weather", "台风路径与风圈历史数据", "1980 年以来影响华南的台风路径、强度与七级风圈半径。",
      "逐 6 小时的台风中心位置、中心气压、最大风速与风圈半径，用于巨灾模型与保险定价。", ("台风", "风圈", "巨灾"),
      price=35000, export=True, private_for="harbor"),
    A("nanyue", "weather", "Short-range rainfall forecast 短时降水预报", "未来 0–2 小时 1 公里格点降水预报，6 分钟一次。",
      "基于雷达外推与数值预报融合的短临降水格点产品，历史归档按日打包。", ("降水", "短临", "雷达"), fmt="jsonl",
      monthly=5000, export=True),
    A("nanyue", "weather", "城市内涝积水点监测", "易涝点水位传感器读数与积水深度，暴雨期间 1 分钟一更新。",
      "覆盖全市 400 余个易涝点，可用于排水设施评估、出行预警与车险风险研究。", ("内涝", "积水", "暴雨"), price=8000),
    A("nanyue", "weather", "Lightning strikes 雷电定位数据", "闪电发生时间、位置、强度与极性。",
      "来自自建雷电定位网，定位精度约 500 米，用于电网防雷、保险与户外作业安全。", ("雷电", "闪电"), price=6000,
      export=True),
    A("nanyue", "weather", "海洋气象浮标观测", "近海浮标的海温、浪高、风速与气压观测。",
      "逐 10 分钟观测，用于航运安全、海上风电运维与渔业服务。", ("海洋", "浮标", "浪高"), price=15000, monthly=1800),
    A("nanyue", "weather", "高温热浪指数（街道级）", "按街道计算的体感温度与热浪风险等级。",
      "结合气温、湿度与城市下垫面计算，用于公共卫生预警与电力负荷研究。", ("高温", "热浪")),
    A("nanyue", "weather", "Air quality hourly 空气质量逐时", "PM2.5、PM10、O3、NO2 等六项污染物逐小时浓度。",
      "来自自建微站网络并与国控站比对校准，含 AQI 与首要污染物。", ("空气质量", "PM2.5"), monthly=900, export=True),
    A("nanyue", "weather", "农业气象：积温与降水距平", "主要农区的逐日积温、降水距平与干旱指数。",
      "用于农业保险、作物估产与种植规划。", ("农业", "积温", "干旱"), price=5000),
    # -- 能源 energy ------------------------------------------------------------------------------------
    A("greenbay", "energy", "EV charging sessions 充电桩充电记录", "公共充电桩每次充电的开始时间、时长与电量，用户已匿名。",
      "覆盖 6,000 余个公共充电桩，用于充电设施规划、电网负荷研究与新能源汽车产业分析。", ("充电桩", "新能源汽车", "EV"),
      price=22000, monthly=2600, personal_info="anonymized"),
    A("greenbay", "energy", "Charging station map 充电站分布与状态", "充电站位置、桩数、功率与实时空闲状态。",
      "每 5 分钟更新，供地图导航与出行产品接入。", ("充电站", "地图"), monthly=1200, export=True),
    A("gridlab", "energy", "配电台区负荷曲线", "各配电台区 15 分钟负荷曲线与最大负荷率。",
      "来自配电物联网终端，已按台区聚合；用于负荷预测、需求响应与配网规划。", ("负荷", "配电", "电网"), price=45000,
      grade="important", approval=True),
    A("gridlab", "energy", "工商业用电量（行业×月）", "按行业与月份统计的工商业用电量，反映经济运行。",
      "行业分类依 GB/T 4754，已聚合到区县与行业中类，可作为经济景气指标。", ("用电量", "行业", "经济"), price=16000,
      private_for="sghkbank"),
    A("gridlab", "energy", "Rooftop solar generation 屋顶光伏发电量", "分布式屋顶光伏的逐小时发电量与装机容量。",
      "覆盖 1,200 余个屋顶光伏项目，用于光伏出力预测与绿电交易研究。", ("光伏", "绿电", "solar"), price=11000,
      monthly=1300, export=True),
    A("greenbay", "energy", "楼宇能耗监测", "商业楼宇分项能耗（空调、照明、动力）逐小时数据。",
      "用于建筑节能诊断、碳排放核算与能源管理服务。", ("楼宇", "能耗", "碳排放"), price=9000),
    A("gridlab", "energy", "储能电站运行数据", "用户侧储能电站的充放电功率、SOC 与效率。",
      "逐 5 分钟记录，可用于储能调度策略、峰谷套利分析与设备健康评估。", ("储能", "SOC"), fmt="jsonl", price=13000),
    A("greenbay", "energy", "Gas station fuel sales 加油站销量", "加油站分油品日销量，按区县聚合。",
      "用于燃油需求分析、新能源替代研究与经济监测。", ("加油站", "油品"), price=7000),
    A("gridlab", "energy", "碳排放因子（区域电网）", "区域电网逐月平均排放因子与清洁能源占比。",
      "依公开统计与发电结构计算，供企业碳核算与绿色金融使用。", ("碳排放", "因子", "绿色金融"), export=True),
    # -- 医疗 healthcare（均已去标识化）------------------------------------------------------------------
    A("medinst", "healthcare", "门急诊就诊量（病种×周）", "合作医院门急诊就诊量，按 ICD-10 病种大类与周统计。",
      "来自 12 家合作医院，已聚合、不含个人信息，用于传染病趋势研判与医疗资源配置。", ("门诊", "ICD-10", "就诊量"),
      price=20000, personal_info="deidentified", legal_basis=_DEID),
    A("medinst", "healthcare", "Diabetes cohort (de-identified) 糖尿病随访队列", "2 型糖尿病患者随访的检验指标与用药，已去标识化。",
      "含 HbA1c、血糖、血脂等检验结果与用药类别，患者以研究编号表示，仅限科研用途并需审批。", ("糖尿病", "队列", "科研"),
      price=80000, personal_info="deidentified", approval=True, legal_basis=_DEID),
    A("medinst", "healthcare", "医学影像报告文本（去标识化）", "胸部 CT 与 X 光报告文本，已去除一切可识别信息。",
      "约 5 万份报告的结构化所见与结论，可用于医学自然语言处理研究。", ("影像", "报告", "NLP"), fmt="jsonl", price=60000,
      personal_info="deidentified", approval=True, legal_basis=_DEID),
    A("medinst", "healthcare", "急救出车与到达时间", "120 急救出车、到达现场与送达医院的时间间隔统计。",
      "按区、时段统计的急救响应时长，用于急救站点布局与交通保障研究。", ("急救", "120", "响应时间"), price=10000,
      personal_info="deidentified", legal_basis=_DEID),
    A("medinst", "healthcare", "Hospital bed occupancy 医院床位使用率", "各科室床位使用率与平均住院日，按周统计。",
      "用于医疗资源调度与公共卫生应急准备。", ("床位", "住院")),
    A("medinst", "healthcare", "疫苗接种覆盖率（街道级）", "各类疫苗接种覆盖率，按街道与年龄组统计。",
      "已聚合到街道与年龄组，用于免疫规划评估。", ("疫苗", "接种"), price=8000, personal_info="deidentified",
      legal_basis=_DEID),
    A("medinst", "healthcare", "药品销售监测（药店）", "零售药店分品类药品销量周数据，用于症状监测。",
      "感冒、退热、止泻类药品销量的异常升高可提前提示疫情；不含购药人信息。", ("药品", "症状监测"), price=12000,
      monthly=1500),
    A("medinst", "healthcare", "Chronic disease prevalence 慢病患病率", "高血压、糖尿病等慢病患病率，按区、性别与年龄组统计。",
      "用于健康城市评估与保险产品设计。", ("慢病", "患病率"), price=15000, personal_info="deidentified",
      legal_basis=_DEID, grade="important"),
    A("medinst", "healthcare", "检验参考区间（本地人群）", "常见检验项目在本地人群中的参考区间与分布。",
      "由数十万份检验结果去标识化后计算，用于检验科质控与研究。", ("检验", "参考区间"), price=5000,
      personal_info="deidentified", legal_basis=_DEID),
    # -- 企业信用 enterprise credit ---------------------------------------------------------------------
    A("xinheng", "enterprise_credit", "Enterprise credit scores 企业信用评分", "深圳存续企业的信用评分与风险等级，月度更新。",
      "综合工商、司法、税务、经营异常等 60 余项指标的评分模型结果，用于授信准入与供应商管理。", ("信用评分", "风控"),
      price=60000, monthly=8000, private_for="sghkbank"),
    A("xinheng", "enterprise_credit", "司法涉诉信息", "企业作为当事人的裁判文书、被执行与失信记录摘要。",
      "来自公开司法信息的结构化加工，含案由、金额与状态。", ("司法", "涉诉", "失信"), price=30000, monthly=3500),
    A("xinheng", "enterprise_credit", "Business registration changes 工商变更记录", "企业股东、法定代表人、注册资本等变更记录。",
      "每日更新，可用于关联方识别与贷后预警。", ("工商", "变更", "股东"), monthly=2000, export=True),
    A("xinheng", "enterprise_credit", "企业纳税信用等级", "企业纳税信用 A/B/M/C/D 级别的历年记录。",
      "依公开发布的纳税信用等级整理，用于授信与招投标评估。", ("纳税", "信用等级"), price=12000),
    A("xinheng", "enterprise_credit", "Supply-chain payment behaviour 供应链付款行为", "企业应付账款的平均账期与逾期比例。",
      "由企业授权报送的付款记录聚合，用于供应链金融与客户信用管理。", ("账期", "供应链金融"), price=45000,
      approval=True),
    A("xinheng", "enterprise_credit", "经营异常与严重违法名录", "列入与移出经营异常名录、严重违法失信名单的记录。",
      "每日更新，适合风控预警接入。", ("经营异常", "预警"), monthly=1500),
    A("xinheng", "enterprise_credit", "企业招投标中标记录", "企业在公共资源交易平台的中标项目与金额。",
      "用于企业经营能力评估与市场研究。", ("招投标", "中标"), price=15000, export=True),
    A("xinheng", "enterprise_credit", "Trade credit insurance claims 贸易信用险出险统计", "按行业统计的贸易信用险出险率与赔付率。",
      "已聚合到行业与季度，供保险精算与风险定价使用。", ("信用保险", "出险"), price=25000, private_for="harbor"),
    A("xinheng", "enterprise_credit", "知识产权质押登记", "企业专利、商标质押登记与解押记录。",
      "用于科技型企业融资评估。", ("知识产权", "质押")),
)

# -- synthetic content ----------------------------------------------------------------------------------

_COLUMNS = {
    "transport": ("date", "hour", "zone", "value", "count"),
    "logistics": ("date", "site", "metric", "value", "count"),
    "weather": ("time", "station", "variable", "value", "quality"),
    "energy": ("time", "meter", "kwh", "peak_kw", "flag"),
    "healthcare": ("week", "district", "group", "value", "suppressed"),
    "enterprise_credit": ("month", "entity", "indicator", "value", "grade"),
}


def content(spec: AssetSpec, rows: int = 400) -> bytes:
    """Synthetic content for ``spec``: the same bytes every time, different for every asset."""
    rnd = random.Random(f"{spec.provider}/{spec.title}")
    columns = _COLUMNS[spec.category]
    records = [(f"2026-{rnd.randint(1, 9):02d}-{rnd.randint(1, 28):02d}", rnd.randint(0, 23),
                f"{spec.category[:2].upper()}{rnd.randint(1, 999):03d}", round(rnd.uniform(0, 1000), 2),
                rnd.randint(0, 5000)) for _ in range(rows)]
    if spec.fmt == "jsonl":
        return "".join(json.dumps(dict(zip(columns, r, strict=False))) + "\n" for r in records).encode()
    return (",".join(columns) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in records)).encode()


__all__ = ["ASSETS", "CATEGORIES", "OPERATOR", "PARTIES", "PURPOSES", "SHOWN_BUYER", "SHOWN_PROVIDER",
           "AssetSpec", "PartySpec", "content", "demo_uscc"]


def listing_for(spec: AssetSpec, asset_id: str, buyers: dict[str, str], currency: str) -> ListingCreate:
    """The listing of a demo asset: its plans (a private price for a named buyer), licence and notes."""
    plans: list[dict[str, Any]] = []
    if spec.price:
        plans.append({"model": "one_time", "price": {"amount": spec.price * 100, "currency": currency}})
    if spec.monthly:
        plans.append({"model": "subscription", "price": {"amount": spec.monthly * 100, "currency": currency},
                      "period_days": 30})
    if not plans:
        plans.append({"model": "free", "price": {"amount": 0, "currency": currency}})
    if spec.private_for:  # a negotiated price for one named buyer
        full = spec.price or spec.monthly * 12
        plans.append({"model": "one_time", "price": {"amount": full * 80, "currency": currency},
                      "private_to": [buyers[spec.private_for]]})
    notes = [spec.detail, f"交付格式：{spec.fmt}。内容为演示用合成数据。"]
    if spec.personal_info == "deidentified":
        notes.append("数据已去标识化：仅可用于许可用途，不得尝试重新识别个人，不得与其他数据关联以识别个人。")
    if spec.approval:
        notes.append("下单需经数据提供方审核用途与资质。")
    return ListingCreate(
        asset_id=asset_id, title=spec.title, summary=spec.summary, description="\n\n".join(notes),
        tags=[CATEGORIES[spec.category], *spec.tags], plans=plans,
        licence={"purposes": list(PURPOSES[spec.category]), "term_days": 365,
                 "redistribution": False, "territory": "global" if spec.export else "domestic"},
        approval_required=spec.approval)
